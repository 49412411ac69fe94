# bench/writer_bench.py --gil: count every release of the GIL (Py_BEGIN_ALLOW_THREADS).
set pagination off
set breakpoint pending on
break PyEval_SaveThread
commands
silent
continue
end
run
info breakpoints
