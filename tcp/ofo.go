package tcp

// ofoState is the receiver's out-of-order state: the ranges held in the
// receive ring beyond the in-order data, and what the next ACK's SACK
// blocks report (RFC 2018, RFC 2883).
type ofoState struct {
	ranges  []seqRange // out-of-order data held in rcv beyond rcv.n, sorted
	last    seqRange   // most recent out-of-order arrival, first SACK block
	dsack   seqRange   // duplicate to report in the next ACK (RFC 2883)
	dsackOK bool
}
