package wire

import (
	"encoding/binary"
	"errors"
	"net/netip"
)

// TCP header flags (RFC 9293 §3.1).
const (
	TCPFlagFIN uint8 = 0x01
	TCPFlagSYN uint8 = 0x02
	TCPFlagRST uint8 = 0x04
	TCPFlagPSH uint8 = 0x08
	TCPFlagACK uint8 = 0x10
	TCPFlagURG uint8 = 0x20
	TCPFlagECE uint8 = 0x40
	TCPFlagCWR uint8 = 0x80
)

// TCP option kinds.
const (
	TCPOptEnd           = 0
	TCPOptNOP           = 1
	TCPOptMSS           = 2
	TCPOptWindowScale   = 3
	TCPOptSACKPermitted = 4
	TCPOptSACK          = 5
	TCPOptTimestamps    = 8
)

// TCPMinHeaderLen is the length of a TCP header without options.
const TCPMinHeaderLen = 20

// TCPMaxSACKBlocks is the most SACK blocks an option can carry (40 bytes of
// option space: 2 + 4·8 = 34).
const TCPMaxSACKBlocks = 4

// MaxWindowShift is the largest window scale RFC 7323 §2.3 allows.
const MaxWindowShift = 14

// Errors returned by the TCP parsers.
var (
	ErrTCPTruncated  = errors.New("wire: TCP segment truncated")
	ErrTCPDataOffset = errors.New("wire: TCP data offset invalid")
	ErrTCPOption     = errors.New("wire: TCP option malformed")
)

// TCP is a view over a TCP segment (header, options and payload).
type TCP []byte

// Valid checks that the view holds a whole header with its options.
func (t TCP) Valid() error {
	if len(t) < TCPMinHeaderLen {
		return ErrTCPTruncated
	}
	off := t.HeaderLen()
	if off < TCPMinHeaderLen {
		return ErrTCPDataOffset
	}
	if off > len(t) {
		return ErrTCPTruncated
	}
	return nil
}

func (t TCP) SrcPort() uint16      { return binary.BigEndian.Uint16(t[0:]) }
func (t TCP) DstPort() uint16      { return binary.BigEndian.Uint16(t[2:]) }
func (t TCP) Seq() uint32          { return binary.BigEndian.Uint32(t[4:]) }
func (t TCP) Ack() uint32          { return binary.BigEndian.Uint32(t[8:]) }
func (t TCP) HeaderLen() int       { return int(t[12]>>4) * 4 }
func (t TCP) Flags() uint8         { return t[13] }
func (t TCP) Window() uint16       { return binary.BigEndian.Uint16(t[14:]) }
func (t TCP) Checksum() uint16     { return binary.BigEndian.Uint16(t[16:]) }
func (t TCP) Urgent() uint16       { return binary.BigEndian.Uint16(t[18:]) }
func (t TCP) Options() []byte      { return t[TCPMinHeaderLen:t.HeaderLen()] }
func (t TCP) Payload() []byte      { return t[t.HeaderLen():] }
func (t TCP) SetChecksum(c uint16) { binary.BigEndian.PutUint16(t[16:], c) }

// VerifyChecksum reports whether the segment's checksum is right for the
// IPv4 pseudo-header (src, dst).
func (t TCP) VerifyChecksum(src, dst netip.Addr) bool {
	s := Checksum(t, PseudoHeaderSum(src, dst, 6, len(t)))
	return s == 0xffff
}

// TCPChecksum computes the checksum field value for segment t (whose
// checksum field must be zero).
func TCPChecksum(src, dst netip.Addr, t []byte) uint16 {
	return ^Checksum(t, PseudoHeaderSum(src, dst, 6, len(t)))
}

// SACKBlock is one SACK block [Left, Right) (RFC 2018 §3).
type SACKBlock struct{ Left, Right uint32 }

// TCPOptions is the parsed option list of a segment. WScale is -1 when the
// option is absent.
type TCPOptions struct {
	MSS           uint16
	HasMSS        bool
	WScale        int8
	SACKPermitted bool
	HasTS         bool
	TSVal, TSEcr  uint32
	NumSACK       int
	SACK          [TCPMaxSACKBlocks]SACKBlock
}

// ParseTCPOptions parses the option bytes b into o. Unknown options are
// skipped; a malformed list (bad length, truncated option, wrong length for
// a known kind) is an error, and the segment should be dropped and counted.
func ParseTCPOptions(b []byte, o *TCPOptions) error {
	*o = TCPOptions{WScale: -1}
	for len(b) > 0 {
		kind := b[0]
		switch kind {
		case TCPOptEnd:
			return nil
		case TCPOptNOP:
			b = b[1:]
			continue
		}
		if len(b) < 2 {
			return ErrTCPOption
		}
		l := int(b[1])
		if l < 2 || l > len(b) {
			return ErrTCPOption
		}
		body := b[2:l]
		switch kind {
		case TCPOptMSS:
			if l != 4 {
				return ErrTCPOption
			}
			o.MSS = binary.BigEndian.Uint16(body)
			o.HasMSS = true
		case TCPOptWindowScale:
			if l != 3 {
				return ErrTCPOption
			}
			s := body[0]
			if s > MaxWindowShift { // RFC 7323 §2.3: use 14 and log
				s = MaxWindowShift
			}
			o.WScale = int8(s)
		case TCPOptSACKPermitted:
			if l != 2 {
				return ErrTCPOption
			}
			o.SACKPermitted = true
		case TCPOptSACK:
			if (l-2)%8 != 0 || l == 2 {
				return ErrTCPOption
			}
			n := (l - 2) / 8
			if n > TCPMaxSACKBlocks {
				n = TCPMaxSACKBlocks
			}
			for i := 0; i < n; i++ {
				o.SACK[i] = SACKBlock{binary.BigEndian.Uint32(body[8*i:]), binary.BigEndian.Uint32(body[8*i+4:])}
			}
			o.NumSACK = n
		case TCPOptTimestamps:
			if l != 10 {
				return ErrTCPOption
			}
			o.HasTS = true
			o.TSVal = binary.BigEndian.Uint32(body)
			o.TSEcr = binary.BigEndian.Uint32(body[4:])
		}
		b = b[l:]
	}
	return nil
}

// TCPFields is the fixed part of a TCP header, for building segments.
type TCPFields struct {
	SrcPort, DstPort uint16
	Seq, Ack         uint32
	Flags            uint8
	Window           uint16
	Urgent           uint16
}

// Encode writes the fixed header into b (len(b) = header length incl.
// options, a multiple of 4, ≤ 60) and leaves the checksum zero. Options go
// in b[20:], written before or after.
func (f *TCPFields) Encode(b []byte) {
	binary.BigEndian.PutUint16(b[0:], f.SrcPort)
	binary.BigEndian.PutUint16(b[2:], f.DstPort)
	binary.BigEndian.PutUint32(b[4:], f.Seq)
	binary.BigEndian.PutUint32(b[8:], f.Ack)
	b[12] = uint8(len(b)/4) << 4
	b[13] = f.Flags
	binary.BigEndian.PutUint16(b[14:], f.Window)
	b[16], b[17] = 0, 0
	binary.BigEndian.PutUint16(b[18:], f.Urgent)
}

// TCPOptionsLen is the encoded, 4-byte aligned length of o as written by
// EncodeTCPOptions (the layout Linux's tcp_options_write uses).
func TCPOptionsLen(o *TCPOptions) int {
	n := 0
	if o.HasMSS {
		n += 4
	}
	if o.HasTS {
		n += 12 // SACK-permitted rides in the two NOPs before timestamps
	} else if o.SACKPermitted {
		n += 4
	}
	if o.WScale >= 0 {
		n += 4
	}
	if o.NumSACK > 0 {
		n += 4 + 8*o.NumSACK
	}
	return n
}

// EncodeTCPOptions writes o into b (len ≥ TCPOptionsLen(o)) and returns the
// bytes written.
func EncodeTCPOptions(b []byte, o *TCPOptions) int {
	i := 0
	if o.HasMSS {
		b[0], b[1] = TCPOptMSS, 4
		binary.BigEndian.PutUint16(b[2:], o.MSS)
		i = 4
	}
	if o.HasTS {
		if o.SACKPermitted {
			b[i], b[i+1] = TCPOptSACKPermitted, 2
		} else {
			b[i], b[i+1] = TCPOptNOP, TCPOptNOP
		}
		b[i+2], b[i+3] = TCPOptTimestamps, 10
		binary.BigEndian.PutUint32(b[i+4:], o.TSVal)
		binary.BigEndian.PutUint32(b[i+8:], o.TSEcr)
		i += 12
	} else if o.SACKPermitted {
		b[i], b[i+1], b[i+2], b[i+3] = TCPOptNOP, TCPOptNOP, TCPOptSACKPermitted, 2
		i += 4
	}
	if o.WScale >= 0 {
		b[i], b[i+1], b[i+2], b[i+3] = TCPOptNOP, TCPOptWindowScale, 3, uint8(o.WScale)
		i += 4
	}
	if o.NumSACK > 0 {
		b[i], b[i+1], b[i+2], b[i+3] = TCPOptNOP, TCPOptNOP, TCPOptSACK, uint8(2+8*o.NumSACK)
		i += 4
		for k := 0; k < o.NumSACK; k++ {
			binary.BigEndian.PutUint32(b[i:], o.SACK[k].Left)
			binary.BigEndian.PutUint32(b[i+4:], o.SACK[k].Right)
			i += 8
		}
	}
	return i
}
