package syncookie

// The low TSBits of the SYN-ACK's TSval carry the options the SYN offered,
// so that a cookie ACK (which echoes it in TSecr) restores them:
//
//	bits 0–3 snd_wscale (0xf = no window scaling), bit 4 SACK, bit 5 ECN.
const (
	TSBits    = 6
	tsMask    = 1<<TSBits - 1
	tsWscale  = 0xf
	tsSack    = 1 << 4
	tsEcn     = 1 << 5
	maxWscale = 14 // RFC 7323 §2.3
)

// EncodeTimestamp returns the TSval to send in a cookie SYN-ACK at tsNow,
// carrying the peer's window scale (-1 when the SYN had none; values above
// 14 are clamped to 14 like tcp_parse_options), SACK-permitted and ECN. The
// result is never later than tsNow (it steps back one 64-tick slot instead),
// except that it wraps below zero when tsNow < 64. Mirrors cookie_init_timestamp.
func EncodeTimestamp(tsNow uint32, wscale int, sack, ecn bool) uint32 {
	var opts uint32 = tsWscale
	if wscale >= 0 {
		opts = uint32(min(wscale, maxWscale))
	}
	if sack {
		opts |= tsSack
	}
	if ecn {
		opts |= tsEcn
	}
	ts := tsNow&^tsMask | opts
	if ts > tsNow {
		ts -= 1 << TSBits
	}
	return ts
}

// DecodeTimestamp recovers the options from a cookie ACK's TSecr: wscale is
// -1 when the SYN had no window scale option. Every 6-bit pattern is a valid
// encoding, so ok is always true today; the sysctl checks Linux adds
// (tcp_timestamps, tcp_sack, tcp_window_scaling, tcp_ecn) are the caller's.
// Mirrors cookie_timestamp_decode and cookie_ecn_ok.
func DecodeTimestamp(tsecr uint32) (wscale int, sack, ecn, ok bool) {
	wscale = int(tsecr & tsWscale)
	if wscale == tsWscale {
		wscale = -1
	}
	return wscale, tsecr&tsSack != 0, tsecr&tsEcn != 0, true
}
