package wire

import (
	"encoding/binary"
	"errors"
	"syscall"

	"github.com/tapstack/tapstack/internal/pkt"
)

// ICMPv4HeaderLen is the fixed part of every ICMPv4 message.
const ICMPv4HeaderLen = 8

// ICMPv4 types (RFC 792).
const (
	ICMPv4EchoReply      uint8 = 0
	ICMPv4DestUnreach    uint8 = 3
	ICMPv4SourceQuench   uint8 = 4
	ICMPv4Redirect       uint8 = 5
	ICMPv4Echo           uint8 = 8
	ICMPv4TimeExceeded   uint8 = 11
	ICMPv4ParamProblem   uint8 = 12
	ICMPv4Timestamp      uint8 = 13
	ICMPv4TimestampReply uint8 = 14
)

// ICMPv4 destination-unreachable codes.
const (
	ICMPv4NetUnreach   uint8 = 0
	ICMPv4HostUnreach  uint8 = 1
	ICMPv4ProtoUnreach uint8 = 2
	ICMPv4PortUnreach  uint8 = 3
	ICMPv4FragNeeded   uint8 = 4
)

// ICMPv4 time-exceeded codes.
const (
	ICMPv4ExcTTL      uint8 = 0
	ICMPv4ExcFragTime uint8 = 1
)

// ICMPv4Errno is Linux's icmp_err_convert and the errors the transports'
// err handlers give the other types: the errno an ICMP error means for the
// socket whose packet it quotes, and whether it is fatal (a hard error, told
// at once) or soft. ok is false for a type that is not an error for the
// socket (source quench, redirect) and for an unknown unreachable code.
func ICMPv4Errno(typ, code uint8) (err syscall.Errno, fatal, ok bool) {
	switch typ {
	case ICMPv4DestUnreach:
		if int(code) >= len(icmpErrConvert) {
			return 0, false, false
		}
		e := icmpErrConvert[code]
		return e.errno, e.fatal, true
	case ICMPv4TimeExceeded:
		return syscall.EHOSTUNREACH, false, true
	case ICMPv4ParamProblem:
		return syscall.EPROTO, true, true
	}
	return 0, false, false
}

// icmpErrConvert is Linux's icmp_err_convert, by destination-unreachable
// code.
var icmpErrConvert = [...]struct {
	errno syscall.Errno
	fatal bool
}{
	{syscall.ENETUNREACH, false},  // net unreachable
	{syscall.EHOSTUNREACH, false}, // host unreachable
	{syscall.ENOPROTOOPT, true},   // protocol unreachable
	{syscall.ECONNREFUSED, true},  // port unreachable
	{syscall.EMSGSIZE, false},     // fragmentation needed
	{syscall.EOPNOTSUPP, false},   // source route failed
	{syscall.ENETUNREACH, true},   // net unknown
	{syscall.EHOSTDOWN, true},     // host unknown
	{syscall.ENONET, true},        // host isolated
	{syscall.ENETUNREACH, true},   // net administratively prohibited
	{syscall.EHOSTUNREACH, true},  // host administratively prohibited
	{syscall.ENETUNREACH, false},  // net unreachable for TOS
	{syscall.EHOSTUNREACH, false}, // host unreachable for TOS
	{syscall.EHOSTUNREACH, true},  // communication administratively prohibited
	{syscall.EHOSTUNREACH, true},  // host precedence violation
	{syscall.EHOSTUNREACH, true},  // precedence cutoff
}

// ErrICMPv4Truncated reports a message shorter than 8 bytes.
var ErrICMPv4Truncated = errors.New("wire: icmp message shorter than 8 bytes")

// ErrICMPv4Quote reports an error message whose quoted datagram is not an
// IPv4 header plus at least 8 bytes.
var ErrICMPv4Quote = errors.New("wire: icmp error does not quote an ipv4 header and 8 bytes")

// ICMPv4 is a view of an ICMPv4 message.
type ICMPv4 []byte

// ParseICMPv4 checks that b holds the 8-byte ICMP header. It does not
// verify the checksum (see ChecksumValid). It never allocates.
func ParseICMPv4(b []byte) (ICMPv4, error) {
	if len(b) < ICMPv4HeaderLen {
		return nil, ErrICMPv4Truncated
	}
	return ICMPv4(b), nil
}

// Type is the message type.
func (m ICMPv4) Type() uint8 { return m[0] }

// Code is the message code.
func (m ICMPv4) Code() uint8 { return m[1] }

// Checksum is the checksum field.
func (m ICMPv4) Checksum() uint16 { return binary.BigEndian.Uint16(m[2:4]) }

// ChecksumValid reports whether the checksum over the whole message verifies.
func (m ICMPv4) ChecksumValid() bool { return Checksum(m, 0) == 0xffff }

// Ident is the echo identifier (echo and echo reply).
func (m ICMPv4) Ident() uint16 { return binary.BigEndian.Uint16(m[4:6]) }

// Seq is the echo sequence number (echo and echo reply).
func (m ICMPv4) Seq() uint16 { return binary.BigEndian.Uint16(m[6:8]) }

// RestOfHeader is the 32-bit word after the checksum.
func (m ICMPv4) RestOfHeader() uint32 { return binary.BigEndian.Uint32(m[4:8]) }

// NextHopMTU is the next-hop MTU of a fragmentation-needed message (RFC 1191).
func (m ICMPv4) NextHopMTU() uint16 { return binary.BigEndian.Uint16(m[6:8]) }

// Payload is the data after the 8-byte header: echo data, or the quoted
// datagram of an error message.
func (m ICMPv4) Payload() []byte { return m[ICMPv4HeaderLen:] }

// IsError reports whether the type is an ICMP error (icmp_is_err): those
// never trigger another ICMP error.
func (m ICMPv4) IsError() bool { return ICMPv4TypeIsError(m.Type()) }

// ICMPv4TypeIsError reports whether typ is an error message type.
func ICMPv4TypeIsError(typ uint8) bool {
	switch typ {
	case ICMPv4DestUnreach, ICMPv4SourceQuench, ICMPv4Redirect, ICMPv4TimeExceeded, ICMPv4ParamProblem:
		return true
	}
	return false
}

// Quoted parses the datagram quoted by an error message: an IPv4 header (no
// checksum check, total length not trusted) followed by at least 8 bytes.
// It returns the header view and the bytes after the quoted header.
func (m ICMPv4) Quoted() (IPv4, []byte, error) {
	h, err := ParseIPv4Header(m.Payload())
	if err != nil {
		return nil, nil, ErrICMPv4Quote
	}
	rest := h.Payload()
	if len(rest) < 8 {
		return nil, nil, ErrICMPv4Quote
	}
	return h, rest, nil
}

// SetType sets the message type.
func (m ICMPv4) SetType(v uint8) { m[0] = v }

// SetCode sets the message code.
func (m ICMPv4) SetCode(v uint8) { m[1] = v }

// SetIdent sets the echo identifier.
func (m ICMPv4) SetIdent(v uint16) { binary.BigEndian.PutUint16(m[4:6], v) }

// SetSeq sets the echo sequence number.
func (m ICMPv4) SetSeq(v uint16) { binary.BigEndian.PutUint16(m[6:8], v) }

// SetRestOfHeader sets the 32-bit word after the checksum.
func (m ICMPv4) SetRestOfHeader(v uint32) { binary.BigEndian.PutUint32(m[4:8], v) }

// SetChecksum computes and stores the checksum over the whole message.
func (m ICMPv4) SetChecksum() {
	m[2], m[3] = 0, 0
	binary.BigEndian.PutUint16(m[2:4], ^Checksum(m, 0))
}

// ICMPv4Repr is the header of an ICMPv4 message; Rest is the 32-bit word
// after the checksum (ident<<16|seq for echo, the MTU for frag-needed).
type ICMPv4Repr struct {
	Type, Code uint8
	Rest       uint32
}

// EchoRest packs an echo identifier and sequence number into Rest.
func EchoRest(ident, seq uint16) uint32 { return uint32(ident)<<16 | uint32(seq) }

// PrependICMPv4 writes the ICMP header into b's headroom in front of the
// window (the message body) and computes the checksum over the message.
func PrependICMPv4(b *pkt.Buffer, r *ICMPv4Repr) ICMPv4 {
	b.Prepend(ICMPv4HeaderLen)
	m := ICMPv4(b.Bytes())
	m.SetType(r.Type)
	m.SetCode(r.Code)
	m.SetRestOfHeader(r.Rest)
	m.SetChecksum()
	return m
}
