package stack_test

import (
	"fmt"
	"io"
	"net/netip"

	"github.com/tapstack/tapstack/driver"
	"github.com/tapstack/tapstack/stack"
)

// Two stacks joined by an in-memory link: one echoes, the other dials. On a
// real system the link is driver.OpenTAP("tap0", 1).
func Example() {
	left, right := driver.NewPipe(driver.PipeConfig{}, driver.PipeConfig{})
	server, _ := stack.New(stack.Config{Sysctls: map[string]string{"net.core.somaxconn": "128"}})
	defer server.Close()
	client, _ := stack.New(stack.Config{})
	defer client.Close()
	server.Attach(left, netip.MustParsePrefix("10.9.0.1/24"))
	client.Attach(right, netip.MustParsePrefix("10.9.0.2/24"))

	ln, _ := server.Listen("tcp", ":7")
	go func() {
		c, _ := ln.Accept()
		io.Copy(c, c)
		c.Close()
	}()
	c, err := client.Dial("tcp", "10.9.0.1:7")
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Fprint(c, "hello")
	buf := make([]byte, 5)
	io.ReadFull(c, buf)
	fmt.Println(string(buf))
	c.Close()
	ln.Close()

	st := server.Stats()
	passive, _ := st.Get("TcpPassiveOpens")
	fmt.Println("TcpPassiveOpens", passive)
	// Output:
	// hello
	// TcpPassiveOpens 1
}

// A listener's queues as ss shows them: Recv-Q is the accept-queue length,
// Send-Q the backlog.
func ExampleStack_WriteSockets() {
	st, _ := stack.New(stack.Config{})
	defer st.Close()
	link, _ := driver.NewPipe(driver.PipeConfig{}, driver.PipeConfig{})
	st.Attach(link, netip.MustParsePrefix("10.9.0.1/24"))
	ln, _ := st.ListenTCP(netip.MustParseAddrPort("10.9.0.1:80"), 511)
	defer ln.Close()
	for _, si := range st.Sockets() {
		fmt.Println(si.State, si.RecvQ, si.SendQ, si.Local)
	}
	// Output:
	// LISTEN 0 511 10.9.0.1:80
}
