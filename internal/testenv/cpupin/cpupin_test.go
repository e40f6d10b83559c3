package cpupin

import (
	"runtime"
	"testing"

	"golang.org/x/sys/unix"
)

func TestRunBindsToOneCPUAndRestores(t *testing.T) {
	runtime.LockOSThread() // Run's thread is then this one, before and after
	defer runtime.UnlockOSThread()
	var before, after unix.CPUSet
	if err := unix.SchedGetaffinity(0, &before); err != nil {
		t.Fatal(err)
	}
	err := Run(func() error {
		var in unix.CPUSet
		if err := unix.SchedGetaffinity(0, &in); err != nil {
			return err
		}
		if in.Count() != 1 {
			t.Errorf("inside Run the thread may use %d CPUs, want 1", in.Count())
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := unix.SchedGetaffinity(0, &after); err != nil {
		t.Fatal(err)
	}
	if after != before {
		t.Errorf("affinity after Run %v, before %v", after, before)
	}
}
