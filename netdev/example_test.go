package netdev_test

import (
	"fmt"

	"github.com/tapstack/tapstack/driver"
	"github.com/tapstack/tapstack/internal/pkt"
	"github.com/tapstack/tapstack/netdev"
)

// A device over one end of an in-memory pipe; frames written by the other
// end reach the handler registered for their ethertype.
func ExampleDevice() {
	link, peer := driver.NewPipe(driver.PipeConfig{}, driver.PipeConfig{})
	defer peer.Close()
	sc := netdev.NewSysctls()
	sc.MaxBacklog.Store(100) // net.core.netdev_max_backlog, live
	d := netdev.New(link, netdev.Config{Shards: 2, Sysctls: sc})
	done := make(chan string)
	d.Handle(0x88b5, func(b *pkt.Buffer) { done <- string(b.Bytes()) })
	d.Start()
	defer d.Close()

	frame := append(append(append([]byte{}, link.MAC()...), peer.MAC()...), 0x88, 0xb5)
	peer.WriteFrame(0, append(frame, "hello"...))
	fmt.Println(<-done)
	// Output: hello
}
