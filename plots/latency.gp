# latency.gp — serving latency (p50, p99) against offered rate, the SLO as a
# line, measured points on top. Expects: datafile (index 0: predicted, index
# 1: measured; columns: rate p50_ms p99_ms throughput), title, has_slo,
# slo_ms, has_measured, logy, ylo, yhi.
set title title
set xlabel 'offered rate (requests/s)'
set ylabel 'latency (ms)'
if (logy) { set logscale y }
set grid lc rgb '#dddddd'
set key top left box opaque
set style line 1 lc rgb '#4c78a8' lw 2 pt 7 ps 0.8
set style line 2 lc rgb '#e45756' lw 2 pt 5 ps 0.8
set style line 3 lc rgb '#222222' lw 1.5 dt 2
set style line 4 lc rgb '#4c78a8' pt 6 ps 2 lw 2
set style line 5 lc rgb '#e45756' pt 4 ps 2 lw 2
set yrange [ylo:yhi]
if (has_slo) { set arrow 1 from graph 0, first slo_ms to graph 1, first slo_ms nohead ls 3 front }
slo_title = has_slo ? sprintf('SLO %g ms', slo_ms) : ''
if (has_measured) {
    plot datafile index 0 using 1:2 with linespoints ls 1 title 'p50 (predicted)', \
         datafile index 0 using 1:3 with linespoints ls 2 title 'p99 (predicted)', \
         keyentry with lines ls 3 title slo_title, \
         datafile index 1 using 1:2 with points ls 4 title 'p50 (measured)', \
         datafile index 1 using 1:3 with points ls 5 title 'p99 (measured)'
} else {
    plot datafile index 0 using 1:2 with linespoints ls 1 title 'p50 (predicted)', \
         datafile index 0 using 1:3 with linespoints ls 2 title 'p99 (predicted)', \
         keyentry with lines ls 3 title slo_title
}
