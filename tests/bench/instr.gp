# gnuplot -e "dat='<instr.dat>'; outdir='<dir>'" tests/bench/instr.gp
# instr.dat columns (tests/bench/instr): sessions, plain instructions per
# request, idle instructions per request, ratio, per-round min, max.

set terminal pngcairo size 800,480 font "sans,11" noenhanced
set grid
set key bottom right
set logscale x
set format x "%.0s%c"
set xlabel "sessions in the store (cold: every request a different session)"
set output outdir."/instructions.png"
set title "Instructions per request under callgrind (one Caddy, both sites, bbolt store, stop-the-world GC)"
set ylabel "instructions per request (mean of rounds)"
set yrange [0:*]
set y2label "ratio idle ÷ plain"
set y2range [0.9:1.3]
set y2tics
plot dat using 1:2 with linespoints lw 2 title "plain reverse_proxy", \
     ""  using 1:3 with linespoints lw 2 title "idle_session + reverse_proxy", \
     ""  using 1:4:5:6 axes x1y2 with yerrorlines dt 2 title "ratio idle ÷ plain (mean, per-round min–max)"
