set terminal pngcairo size 1000,840 font 'sans,10'
set output 'bench/results/e2e.png'
set multiplot layout 2,1
set logscale x 10
set xrange [7:150000]
set yrange [0:*]
set xlabel 'rules (N)'
set ylabel 'packets/s received'
set format y '%.1s%c'
set key outside right
set grid
set title 'deny: packets/s through a veth pair (median), AMD EPYC, 2 cores, kernel 6.18.44-fc-v782'
plot 'bench/results/.plot-deny-nf2bpf-tc.dat' using 1:2 with linespoints lw 2 title 'nf2bpf-tc', 'bench/results/.plot-deny-nf2bpf-xdp.dat' using 1:2 with linespoints lw 2 title 'nf2bpf-xdp', 'bench/results/.plot-deny-iptables-nft.dat' using 1:2 with linespoints lw 2 title 'iptables-nft', 'bench/results/.plot-deny-iptables-legacy.dat' using 1:2 with linespoints lw 2 title 'iptables-legacy', 'bench/results/.plot-deny-nft.dat' using 1:2 with linespoints lw 2 title 'nft', 'bench/results/.plot-deny-nft-set.dat' using 1:2 with linespoints lw 2 title 'nft-set', 'bench/results/.plot-deny-ipset.dat' using 1:2 with linespoints lw 2 title 'ipset', 198437 with lines dt 2 lc rgb 'black' title 'no rules loaded'
set title 'kube: packets/s through a veth pair (median), AMD EPYC, 2 cores, kernel 6.18.44-fc-v782'
plot 'bench/results/.plot-kube-nf2bpf-tc.dat' using 1:2 with linespoints lw 2 title 'nf2bpf-tc', 'bench/results/.plot-kube-nf2bpf-xdp.dat' using 1:2 with linespoints lw 2 title 'nf2bpf-xdp', 'bench/results/.plot-kube-iptables-nft.dat' using 1:2 with linespoints lw 2 title 'iptables-nft', 'bench/results/.plot-kube-iptables-legacy.dat' using 1:2 with linespoints lw 2 title 'iptables-legacy', 'bench/results/.plot-kube-nft.dat' using 1:2 with linespoints lw 2 title 'nft', 'bench/results/.plot-kube-nft-set.dat' using 1:2 with linespoints lw 2 title 'nft-set', 'bench/results/.plot-kube-ipset.dat' using 1:2 with linespoints lw 2 title 'ipset', 185446 with lines dt 2 lc rgb 'black' title 'no rules loaded'
unset multiplot
