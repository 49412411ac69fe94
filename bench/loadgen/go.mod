// The HTTP benchmarks' load generator (bench/gateway_bench.py, bench/features_bench.py):
// standard library only, so it builds offline with any Go toolchain.
module github.com/apprentice-dev/apprentice/bench/loadgen

go 1.22
