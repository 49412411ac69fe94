// The teacher bench's loopback teacher (bench/teacher_bench.py): standard library only,
// so it builds offline with any Go toolchain.
module github.com/apprentice-dev/apprentice/bench/loopteacher

go 1.22
