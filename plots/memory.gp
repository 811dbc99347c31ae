# memory.gp — each stage's (interleaved: device's) peak memory against its
# device's capacity. Expects: datafile (columns: "label" peak_bytes
# capacity_bytes fits), title, scale (bytes per unit), unit, ymax (bytes), n.
set title title
set ylabel sprintf('memory (%s)', unit)
set yrange [0:ymax / scale]
set xrange [-0.6:n - 0.4]
set grid ytics lc rgb '#dddddd'
set key top right box opaque
set style fill solid 0.9 border lc rgb '#333333'
if (n > 8) { set xtics rotate by -30 }
ok_col = 0x2ca02c
over_col = 0xd62728
plot datafile using 0:($3 / scale):(0.8) with boxes fs solid 1.0 border lc rgb '#333333' \
         lc rgb '#e4e4e4' title 'device capacity', \
     datafile using 0:($2 / scale):(0.5):($4 > 0.5 ? ok_col : over_col):xtic(1) with boxes lc rgb variable notitle, \
     datafile using 0:($2 / scale):(sprintf('%.3g %s', $2 / scale, unit)) with labels offset char 0,0.8 \
         font ',9' notitle, \
     keyentry with boxes fs solid lc rgb ok_col title 'peak (fits)', \
     keyentry with boxes fs solid lc rgb over_col title 'peak (over capacity)'
