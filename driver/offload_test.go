package driver_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"io"
	"net"
	"strconv"
	"strings"
	"testing"

	"github.com/google/gopacket/layers"

	"github.com/tapstack/tapstack/driver"
	"github.com/tapstack/tapstack/internal/testenv/netnstest"
)

func openOffload(t testing.TB, ns *netnstest.NS, name string, queues int) *driver.OffloadTAP {
	t.Helper()
	var tap *driver.OffloadTAP
	if err := ns.Do(func() (err error) {
		tap, err = driver.OpenTAPOffload(name, queues)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tap.Close() })
	return tap
}

// dialKernel connects a kernel socket in ns to 10.0.0.2:port while the
// fake peer answers the handshake; it returns the established conn.
func dialKernel(t testing.TB, ns *netnstest.NS, p *fakePeer) net.Conn {
	t.Helper()
	connc, errc := make(chan net.Conn, 1), make(chan error, 1)
	go func() {
		errc <- ns.Do(func() error {
			c, err := net.Dial("tcp", "10.0.0.2:"+strconv.Itoa(int(p.port)))
			if err == nil {
				connc <- c
			}
			return err
		})
	}()
	p.accept()
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	c := <-connc
	t.Cleanup(func() { c.Close() })
	return c
}

func pattern(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*7 + i>>8)
	}
	return b
}

// TestOffloadTAPReceivesTSOStream: a kernel client streams 1 MiB to the fake
// peer; with TSO on the TAP the kernel hands over super-frames longer than
// 1514 bytes whose IPv4 length and TCP checksum are valid once ReadFrame has
// completed the partial checksum, and the bytes are the client's.
func TestOffloadTAPReceivesTSOStream(t *testing.T) {
	ns := netnstest.New(t)
	tap := openOffload(t, ns, "tso0", 1)
	if out := ns.MustIP("-d", "link", "show", "tso0"); !strings.Contains(out, "vnet_hdr on") {
		t.Logf("ip -d link: %s", out) // older iproute2 does not print it
	}
	p := kernelTCPPeer(t, ns, "tso0", tap, 5001)
	conn := dialKernel(t, ns, p)
	want := pattern(1 << 20)
	go func() { conn.Write(want) }()

	var got []byte
	largest, bad := 0, 0
	for len(got) < len(want) {
		frame, _, tcp := p.next()
		if !tcpChecksumOK(frame) {
			bad++
			continue
		}
		largest = max(largest, len(frame))
		if tcp.Seq == p.rcv && len(tcp.Payload) > 0 {
			got = append(got, tcp.Payload...)
			p.rcv += uint32(len(tcp.Payload))
		}
		p.ack()
	}
	if bad > 0 {
		t.Fatalf("%d frames with a bad IPv4 length or checksum", bad)
	}
	if !bytes.Equal(got, want) {
		t.Fatal("received stream differs from what the kernel client sent")
	}
	st := tap.Stats()
	t.Logf("largest frame %d bytes; stats %+v", largest, st)
	if largest <= 1514 || st.RxGSO == 0 {
		t.Fatalf("no super-frame: largest %d bytes, stats %+v", largest, st)
	}
}

// TestOffloadTAPReadFrameInfoTrustsPartialChecksums: through ReadFrameInfo
// the kernel's super-frames arrive as it built them, CHECKSUM_PARTIAL: the
// TCP checksum field holds only the pseudo-header sum (so a verifier would
// reject them) and RxInfo.ChecksumValid says not to verify; the bytes are
// still the client's.
func TestOffloadTAPReadFrameInfoTrustsPartialChecksums(t *testing.T) {
	ns := netnstest.New(t)
	tap := openOffload(t, ns, "tso0", 1)
	p := kernelTCPPeer(t, ns, "tso0", tap, 5001)
	conn := dialKernel(t, ns, p)
	p.withInfo = true
	want := pattern(1 << 20)
	go func() { conn.Write(want) }()

	var got []byte
	partial, super := 0, 0
	for len(got) < len(want) {
		frame, _, tcp := p.next()
		if len(tcp.Payload) == 0 {
			continue
		}
		if !p.info.ChecksumValid {
			t.Fatalf("data frame of %d bytes without ChecksumValid", len(frame))
		}
		if !tcpChecksumOK(frame) {
			partial++
		}
		if len(frame) > 1514 {
			super++
		}
		if tcp.Seq == p.rcv {
			got = append(got, tcp.Payload...)
			p.rcv += uint32(len(tcp.Payload))
		}
		p.ack()
	}
	if !bytes.Equal(got, want) {
		t.Fatal("received stream differs from what the kernel client sent")
	}
	if partial == 0 || super == 0 {
		t.Fatalf("%d frames with a partial checksum, %d super-frames: the kernel's CHECKSUM_PARTIAL did not reach us", partial, super)
	}
}

// TestOffloadTAPSendsGSO: after the handshake the fake peer writes one
// 20000-byte super-frame with WriteGSO (mss 1448, no TCP checksum of its
// own); the kernel socket reads all of it.
func TestOffloadTAPSendsGSO(t *testing.T) {
	ns := netnstest.New(t)
	tap := openOffload(t, ns, "tso1", 1)
	p := kernelTCPPeer(t, ns, "tso1", tap, 5002)
	conn := dialKernel(t, ns, p)
	want := pattern(20000)
	frame := p.segment(&layers.TCP{PSH: true}, want)
	binary.BigEndian.PutUint16(frame[14+20+16:], 0) // the link must fill in the partial sum
	if err := tap.WriteGSO(0, frame, 1448); err != nil {
		t.Fatal(err)
	}
	p.snd += uint32(len(want))
	got := make([]byte, len(want))
	if _, err := io.ReadFull(conn, got); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatal("kernel socket read different bytes")
	}
	if st := tap.Stats(); st.TxGSO != 1 {
		t.Fatalf("stats %+v", st)
	}
	// The kernel acknowledges all of it.
	for {
		_, _, tcp := p.next()
		if tcp.ACK && tcp.Ack == p.snd {
			break
		}
	}
	if err := tap.WriteGSO(0, frame[:100], 1448); err == nil {
		t.Fatal("truncated super-frame accepted")
	}
}

// TestOffloadTAPPingFragments: an 8000-byte ping leaves the kernel as IPv4
// fragments (no GSO for ICMP): each arrives whole, at most 1514 bytes, and
// together they carry an ICMP echo with a valid checksum.
func TestOffloadTAPPingFragments(t *testing.T) {
	netnstest.RequireTool(t, "ping")
	ns := netnstest.New(t)
	tap := openOffload(t, ns, "tso2", 1)
	p := kernelTCPPeer(t, ns, "tso2", tap, 0)
	ctx, cancel := context.WithCancel(context.Background())
	ping := ns.Command(ctx, "ping", "-c1", "-W2", "-s", "8000", "10.0.0.2") // nobody answers
	if err := ping.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cancel(); ping.Wait() }()
	var icmp []byte
	for done := false; !done; {
		f := p.nextFrame()
		ip := f[14:]
		if ip[9] != 1 {
			continue
		}
		if len(f) > 1514 || onesSum(ip[:20], 0) != 0xffff {
			t.Fatalf("fragment of %d bytes, bad header", len(f))
		}
		flags := binary.BigEndian.Uint16(ip[6:])
		if off := int(flags&0x1fff) * 8; off != len(icmp) {
			t.Fatalf("fragment at %d after %d bytes", off, len(icmp))
		}
		icmp = append(icmp, ip[20:binary.BigEndian.Uint16(ip[2:])]...)
		done = flags&0x2000 == 0
	}
	if len(icmp) != 8008 || icmp[0] != 8 || onesSum(icmp, 0) != 0xffff {
		t.Fatalf("reassembled %d bytes, type %d, checksum ok %v", len(icmp), icmp[0], onesSum(icmp, 0) == 0xffff)
	}
	if st := tap.Stats(); st.RxGSO != 0 || st.RxBad != 0 {
		t.Fatalf("stats %+v", st)
	}
}

// TestOffloadTAPMultiQueueClose opens four queues, checks the device is
// multi-queue with a vnet header, and that Close unblocks every reader and
// removes the device.
func TestOffloadTAPMultiQueueClose(t *testing.T) {
	ns := netnstest.New(t)
	tap := openOffload(t, ns, "tso3", 4)
	if tap.Queues() != 4 || tap.Name() != "tso3" || tap.MaxFrameSize() != driver.MaxGSOFrameSize ||
		driver.GSOMax(tap) != driver.MaxGSOFrameSize {
		t.Fatalf("queues %d name %s max %d", tap.Queues(), tap.Name(), tap.MaxFrameSize())
	}
	if out := ns.MustIP("-d", "link", "show", "tso3"); !strings.Contains(out, "multi_queue") {
		t.Fatalf("not multi-queue:\n%s", out)
	}
	ns.LinkUp("tso3")
	checkCloseUnblocksReaders(t, tap, 4, driver.MaxGSOFrameSize)
	if _, err := ns.IP("link", "show", "tso3"); err == nil {
		t.Fatal("device still exists after Close")
	}
}

// TestOffloadTAPDropsTruncated: a read buffer too small for a super-frame
// yields no half-checksummed frame; the drop is counted.
func TestOffloadTAPDropsTruncated(t *testing.T) {
	ns := netnstest.New(t)
	tap := openOffload(t, ns, "tso4", 1)
	p := kernelTCPPeer(t, ns, "tso4", tap, 5004)
	conn := dialKernel(t, ns, p)
	go conn.Write(pattern(100000))
	p.buf = p.buf[:1514]         // the fake peer now reads with a 1514-byte buffer
	for tap.Stats().RxBad == 0 { // each read waits for the kernel (fakePeer.nextFrame)
		frame, _, _ := p.next()
		if !tcpChecksumOK(frame) {
			t.Fatalf("a %d-byte frame with a bad length or checksum was returned", len(frame))
		}
	}
}
