package ipv4

import (
	"bytes"
	"encoding/binary"
	"io"
	"net"
	"net/netip"
	"testing"

	"github.com/tapstack/tapstack/driver"
	"github.com/tapstack/tapstack/internal/pkt"
	"github.com/tapstack/tapstack/internal/testenv/netnstest"
	"github.com/tapstack/tapstack/internal/testenv/testwait"
	"github.com/tapstack/tapstack/netdev"
	"github.com/tapstack/tapstack/wire"
)

// TestNetnsOutputGSO plays the server side of one TCP connection by hand
// on the IPv4 layer over an offload TAP: a kernel client connects to
// 10.0.0.2:5020, a hand-built SYN-ACK goes out with Output (the layer
// resolves the kernel by ARP), then one 30000-byte super-segment goes out
// with OutputGSO (mss 1448, TCP checksum left to the device). The kernel
// socket reads exactly those bytes and acknowledges all of them.
func TestNetnsOutputGSO(t *testing.T) {
	ns := netnstest.New(t)
	var tap *driver.OffloadTAP
	if err := ns.Do(func() (err error) { tap, err = driver.OpenTAPOffload("tsgso0", 1); return err }); err != nil {
		t.Fatal(err)
	}
	dev := netdev.New(tap, netdev.Config{Shards: 1})
	l := New(dev, Config{})
	defer func() { l.Close(); dev.Close() }()
	if l.GSOMax() != 65535 {
		t.Fatalf("GSOMax %d", l.GSOMax())
	}
	ours, kernel := netip.MustParseAddr("10.0.0.2"), netip.MustParseAddr("10.0.0.1")
	if err := l.AddAddress(netip.MustParsePrefix("10.0.0.2/24")); err != nil {
		t.Fatal(err)
	}
	segs := make(chan []byte, 64)
	l.RegisterProtocol(wire.IPProtocolTCP, func(p Packet) {
		select {
		case segs <- append([]byte(nil), p.Payload...):
		default:
		}
	})
	dev.Start()
	ns.AddrAdd("tsgso0", "10.0.0.1/24")
	ns.LinkUp("tsgso0")
	l.Start()

	next := func() wire.TCP {
		t.Helper()
		return wire.TCP(testwait.Recv(t, segs, "a segment from the kernel"))
	}
	connc := make(chan net.Conn, 1)
	go ns.Do(func() error {
		c, err := net.Dial("tcp", "10.0.0.2:5020")
		if err == nil {
			connc <- c
		}
		return err
	})
	syn := next()
	if syn.Flags()&0x12 != 0x02 || syn.DstPort() != 5020 {
		t.Fatalf("expected a SYN, got flags %#x to port %d", syn.Flags(), syn.DstPort())
	}
	const iss = 7000
	kport, rcv := syn.SrcPort(), syn.Seq()+1
	synAck := handSegment(5020, kport, iss, rcv, 0x12, []byte{2, 4, 0x05, 0xb4}, nil)
	s := wire.TCP(synAck.Bytes())
	s.SetChecksum(wire.TCPChecksum(ours, kernel, s))
	if err := l.Output(ours, kernel, wire.IPProtocolTCP, synAck); err != nil {
		t.Fatal(err)
	}
	conn := testwait.Recv(t, connc, "the kernel's connect to complete")
	defer conn.Close()

	want := make([]byte, 30000)
	for i := range want {
		want[i] = byte(i*13 + i>>9)
	}
	super := handSegment(5020, kport, iss+1, rcv, 0x18, nil, want)
	if err := l.OutputGSO(netip.Addr{}, kernel, wire.IPProtocolTCP, super, 1448); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, len(want))
	if _, err := io.ReadFull(conn, got); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatal("kernel socket read different bytes")
	}
	if st := tap.Stats(); st.TxGSO != 1 {
		t.Fatalf("offload stats %+v: want one super-frame sent", st)
	}
	for {
		if a := next(); a.Flags()&0x10 != 0 && a.Ack() == iss+1+uint32(len(want)) {
			break
		}
	}
	if v := l.Counter("IpOutRequests"); v != 2 {
		t.Fatalf("IpOutRequests %d, want 2 (SYN-ACK, super-packet)", v)
	}
}

// handSegment builds a TCP segment (window 65535, checksum zero) with the
// given options (a multiple of 4 bytes) and payload.
func handSegment(sport, dport uint16, seq, ack uint32, flags uint8, opts, payload []byte) *pkt.Buffer {
	hl := wire.TCPMinHeaderLen + len(opts)
	b := pkt.Get(hl + len(payload))
	s := b.Append(hl + len(payload))
	clear(s) // a pooled buffer holds an earlier packet's bytes: no stale checksum or urgent pointer
	binary.BigEndian.PutUint16(s[0:], sport)
	binary.BigEndian.PutUint16(s[2:], dport)
	binary.BigEndian.PutUint32(s[4:], seq)
	binary.BigEndian.PutUint32(s[8:], ack)
	s[12] = uint8(hl/4) << 4
	s[13] = flags
	binary.BigEndian.PutUint16(s[14:], 65535)
	copy(s[wire.TCPMinHeaderLen:], opts)
	copy(s[hl:], payload)
	return b
}
