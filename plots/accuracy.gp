# accuracy.gp — predicted against measured iteration time, with y = x.
# Expects: datafile (columns: "config" predicted_ms measured_ms error_pct),
#          title, axis_max, show_labels.
set title title
set xlabel 'predicted iteration time (ms)'
set ylabel 'measured iteration time (ms)'
set size ratio -1
set xrange [0:axis_max]
set yrange [0:axis_max]
set grid lc rgb '#dddddd'
set key top left box opaque reverse Left
set style line 1 lc rgb '#1f77b4' pt 7 ps 1.4
if (show_labels) {
    plot x with lines dt 2 lw 1.5 lc rgb '#777777' title 'y = x (perfect prediction)', \
         datafile using 2:3 with points ls 1 title 'configurations', \
         datafile using 2:3:1 with labels left offset char 1,0.4 font ',8' tc rgb '#444444' notitle
} else {
    plot x with lines dt 2 lw 1.5 lc rgb '#777777' title 'y = x (perfect prediction)', \
         datafile using 2:3 with points ls 1 title 'configurations'
}
