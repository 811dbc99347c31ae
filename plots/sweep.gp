# sweep.gp — predicted throughput against micro-batch size (log2 axis), one
# line per schedule and stage count, the best plan starred, measured points
# on top. Expects: datafile (index 0..nseries-1: one series each, columns
# b samples_per_s iteration_ms, a blank line where no plan fits; index
# nseries: the best plan; index nseries+1: measured points, columns b
# samples_per_s "label"), title, nseries, series_name[], series_color[],
# series_dash[], nb, bvals[], best_label, has_measured, ymax.
array palette[8] = [0x4c78a8, 0xf58518, 0x54a24b, 0xe45756, 0x72b7b2, 0xb279a2, 0xeeca3b, 0x9d755d]
set title title
set xlabel 'micro-batch size b'
set ylabel 'samples/s'
set logscale x 2
set xtics () font ',9'
do for [i=1:nb] { set xtics add (sprintf('%g', bvals[i]) bvals[i]) }
set xrange [bvals[1] / 1.3 : bvals[nb] * 1.3]
set yrange [0:ymax]
set grid lc rgb '#dddddd'
set key outside right top box
best = nseries
meas = nseries + 1
if (has_measured) {
    plot for [i=1:nseries] datafile index (i-1) using 1:2 with linespoints \
             lc rgb palette[(series_color[i] % 8) + 1] dt series_dash[i] lw 2 pt 7 ps 0.7 title series_name[i], \
         datafile index best using 1:2 with points pt 3 ps 4 lw 2 lc rgb '#000000' title 'best plan', \
         datafile index best using 1:2:(best_label) with labels offset char 0,1.8 font ',9' notitle, \
         datafile index meas using 1:2 with points pt 9 ps 2 lc rgb '#d62728' title 'measured', \
         datafile index meas using 1:2:3 with labels left offset char 1.2,0 font ',8' notitle
} else {
    plot for [i=1:nseries] datafile index (i-1) using 1:2 with linespoints \
             lc rgb palette[(series_color[i] % 8) + 1] dt series_dash[i] lw 2 pt 7 ps 0.7 title series_name[i], \
         datafile index best using 1:2 with points pt 3 ps 4 lw 2 lc rgb '#000000' title 'best plan', \
         datafile index best using 1:2:(best_label) with labels offset char 0,1.8 font ',9' notitle
}
