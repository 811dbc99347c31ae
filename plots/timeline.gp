# timeline.gp — one row per stage and per link; forward, backward, recompute
# and transfers in distinct colours; the grey band behind each row is idle.
# Expects: datafile (index 0: idle bands, index 1: ops; columns: kind x y
# xlow xhigh ylow yhigh "label"), title, nrows, rowname[], rowy[], xmax,
# ymax, kshow (8 characters, '1' for each kind in the legend: the five pipeline kinds, then weight
# gradient, all-reduce and other when present), show_labels, nsep and sepy[] (y of the lines between traces).
array kcolor[8] = [0x4c78a8, 0xf58518, 0xb279a2, 0x54a24b, 0xe45756, 0xeeca3b, 0x72b7b2, 0x9d9d9d]
array kname[8] = ['forward', 'backward', 'recompute', 'activation send', 'gradient send', 'weight gradient', 'all-reduce', 'other']
color(k) = k < 0 ? 0xefefef : kcolor[int(k) + 1]
set title title
set xlabel 'time (ms)'
set xrange [0:xmax]
set yrange [-0.7:ymax + 0.7]
set ytics () font ',9'
do for [i=1:nrows] { set ytics add (rowname[i] rowy[i]) }
set grid xtics lc rgb '#dddddd'
set key outside top center horizontal samplen 2
set style fill solid 1.0 noborder
do for [i=1:nsep] { set arrow from graph 0, first sepy[i] to graph 1, first sepy[i] nohead lc rgb '#888888' dt 2 }
plot datafile index 0 using 2:3:4:5:6:7:(color($1)) with boxxyerror lc rgb variable notitle, \
     datafile index 1 using 2:3:4:5:6:7:(color($1)) with boxxyerror lc rgb variable notitle, \
     for [k=1:8] keyentry with boxes fs solid lc rgb kcolor[k] title (kshow[k:k] eq '1' ? kname[k] : ''), \
     keyentry with boxes fs solid lc rgb 0xefefef title 'idle', \
     datafile index 1 using 2:3:(show_labels ? stringcolumn(8) : '') with labels font ',7' tc rgb 'white' notitle
