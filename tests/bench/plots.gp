# gnuplot -e "run='<run dir>'; outdir='<dir>'" tests/bench/plots.gp
# The plots of BENCHMARKS.md, from the files tests/bench/run writes.
# scale.dat columns: sessions, plain req/s, idle req/s, ratio median, min, max, RssAnon kB, start-up s,
# CPU per request idle ÷ plain (median)

set terminal pngcairo size 800,480 font "sans,11" noenhanced
set grid
set key bottom left
set logscale x
set format x "%.0s%c"
set xlabel "sessions tracked"

set output outdir."/throughput.png"
set title "Requests/s vs sessions tracked (keep-alive, alternating runs, one run)"
set ylabel "requests/s (median of rounds)"
set yrange [0:*]
set y2label "ratio"
set y2range [0:1.2]
set y2tics
plot run."/scale.dat" using 1:2 with linespoints lw 2 title "plain reverse_proxy", \
     ""               using 1:3 with linespoints lw 2 title "idle_session + reverse_proxy", \
     ""               using 1:4:5:6 axes x1y2 with yerrorlines dt 2 title "req/s ratio idle ÷ plain (median, min–max)", \
     ""               using 1:(1/$9) axes x1y2 with linespoints dt 3 lw 2 title "CPU/request ratio plain ÷ idle (median)"

unset y2label
unset y2tics
set output outdir."/memory.png"
set title "Caddy anonymous resident memory (RssAnon) vs sessions tracked"
set ylabel "RssAnon (MiB)"
set yrange [0:*]
plot run."/scale.dat" using 1:($7/1024) with linespoints lw 2 title "Caddy with idle_session"

set output outdir."/startup.png"
set title "Start-up time vs sessions in the bbolt file"
set ylabel "launch to first answer (s)"
plot run."/scale.dat" using 1:8 with linespoints lw 2 title "start-up"

unset logscale x
set format x "%g"
set autoscale
stats run."/sweeplag.dat" using 1 nooutput
n = STATS_records
set output outdir."/expiry-lag.png"
set title "Expiry lag: deadline to durable end + queued session.ended (1M sessions, 10k deadlines/s)"
set xlabel "lag (ms)"
set ylabel "fraction of ends (cumulative)"
set yrange [0:1]
set xrange [0:*]
plot run."/sweeplag.dat" using 1:($0+1)/n with lines lw 2 title "lag CDF"

set output outdir."/churn.png"
set title "bbolt file size under churn (sessions started, ended, delivered, purged each cycle)"
set xlabel "cycle"
set ylabel "file size (MiB)"
set yrange [0:*]
set xrange [*:*]
plot run."/churn.dat" using 1:($2/1048576) with linespoints lw 2 title "sessions.db"
