package main

import (
	"encoding/binary"
	"os"
	"syscall"
	"time"
	"unsafe"
)

// ticker fires every period after a first delay, from a timerfd. Go's own timers wake
// the process through epoll_wait, whose timeout is in whole milliseconds: an idle
// generator pacing 1,000 requests/s with time.Sleep would send them up to 1 ms late,
// and that lateness counts as latency. A timerfd is an fd the netpoller waits on, so
// it fires on the kernel's high-resolution timer instead.
type ticker struct {
	f   *os.File
	buf [8]byte
}

type itimerspec struct {
	interval syscall.Timespec
	value    syscall.Timespec
}

const (
	clockMonotonic = 1 // CLOCK_MONOTONIC, the clock Go's monotonic time reads
	tfdNonblock    = syscall.O_NONBLOCK
	tfdCloexec     = syscall.O_CLOEXEC
)

func newTicker(first, period time.Duration) (*ticker, error) {
	fd, _, errno := syscall.Syscall(syscall.SYS_TIMERFD_CREATE, clockMonotonic, tfdNonblock|tfdCloexec, 0)
	if errno != 0 {
		return nil, os.NewSyscallError("timerfd_create", errno)
	}
	spec := itimerspec{
		interval: syscall.NsecToTimespec(int64(period)),
		value:    syscall.NsecToTimespec(int64(first)),
	}
	_, _, errno = syscall.Syscall6(syscall.SYS_TIMERFD_SETTIME, fd, 0,
		uintptr(unsafe.Pointer(&spec)), 0, 0, 0)
	if errno != 0 {
		_ = syscall.Close(int(fd))
		return nil, os.NewSyscallError("timerfd_settime", errno)
	}
	// Non-blocking, so os.NewFile hands it to the netpoller: Read parks the goroutine.
	return &ticker{f: os.NewFile(fd, "timerfd")}, nil
}

// wait blocks until the next expiry and says how many periods have expired since the
// last call (more than one when the generator itself fell behind).
func (t *ticker) wait() (int64, error) {
	if _, err := t.f.Read(t.buf[:]); err != nil {
		return 0, err
	}
	return int64(binary.LittleEndian.Uint64(t.buf[:])), nil
}

func (t *ticker) stop() { _ = t.f.Close() }
