package driver_test

import (
	"encoding/binary"
	"os"
	"testing"
	"time"

	"github.com/google/gopacket/layers"

	"github.com/tapstack/tapstack/driver"
	"github.com/tapstack/tapstack/internal/testenv/netnstest"
)

// BenchmarkTAPReceiveBulk reads a bulk kernel TCP sender (a socket in a
// namespace writing as fast as it can) through the plain TAP and through
// the offload TAP; the fake peer acknowledges every frame, in order only.
// One op is 1 MiB of the stream; frames/s is the link's read rate.
//
//	sudo go test -run XXX -bench TAPReceiveBulk ./driver/
func BenchmarkTAPReceiveBulk(b *testing.B) {
	if os.Geteuid() != 0 {
		b.Skip("needs root (netns and /dev/net/tun)")
	}
	b.Run("plain", func(b *testing.B) {
		ns := netnstest.New(b)
		tap, err := ns.OpenTAP("bnp0", 1)
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { tap.Close() })
		benchReceive(b, ns, "bnp0", tap)
	})
	b.Run("offload", func(b *testing.B) {
		ns := netnstest.New(b)
		tap := openOffload(b, ns, "bno0", 1)
		benchReceive(b, ns, "bno0", tap)
		st := tap.Stats()
		b.ReportMetric(float64(st.RxGSO)/float64(b.N), "gso-frames/op")
	})
}

func benchReceive(b *testing.B, ns *netnstest.NS, dev string, link driver.Link) {
	p := kernelTCPPeer(b, ns, dev, link, 5003)
	conn := dialKernel(b, ns, p)
	go func() {
		chunk := pattern(1 << 16)
		for {
			if _, err := conn.Write(chunk); err != nil {
				return
			}
		}
	}()
	ack := p.segment(&layers.TCP{}, nil)
	ack = ack[:14+binary.BigEndian.Uint16(ack[14+2:])] // without Ethernet padding
	tcpOff := 14 + 20
	frames := 0
	b.SetBytes(1 << 20)
	b.ReportAllocs()
	start := time.Now()
	for b.Loop() {
		for goal := p.rcv + 1<<20; int32(goal-p.rcv) > 0; {
			f := p.nextFrame()
			frames++
			ip := f[14:]
			ihl := int(ip[0]&0x0f) * 4
			tcp := ip[ihl:binary.BigEndian.Uint16(ip[2:])]
			if ip[9] != 6 || binary.BigEndian.Uint16(tcp[2:]) != p.port {
				continue
			}
			seq, payload := binary.BigEndian.Uint32(tcp[4:]), len(tcp)-int(tcp[12]>>4)*4
			if seq == p.rcv && payload > 0 {
				p.rcv += uint32(payload)
			}
			// Acknowledge: patch the template's ack number and checksum.
			binary.BigEndian.PutUint32(ack[tcpOff+8:], p.rcv)
			binary.BigEndian.PutUint16(ack[tcpOff+16:], 0)
			var pseudo [12]byte
			copy(pseudo[0:8], ack[14+12:14+20])
			pseudo[9], pseudo[11] = 6, byte(len(ack)-tcpOff)
			binary.BigEndian.PutUint16(ack[tcpOff+16:], ^onesSum(ack[tcpOff:], onesSum(pseudo[:], 0)))
			if err := link.WriteFrame(0, ack); err != nil {
				b.Fatal(err)
			}
		}
	}
	elapsed := time.Since(start)
	b.ReportMetric(float64(frames)/elapsed.Seconds(), "frames/s")
	b.ReportMetric(float64(frames)/float64(b.N), "frames/op")
	conn.Close()
}
