package tcp

import "sync/atomic"

// counter indexes a MIB counter. The order is the order Counters visits:
// the Tcp (snmp) group, then the TcpExt (netstat) group, like nstat.
type counter int

const (
	cActiveOpens counter = iota
	cPassiveOpens
	cAttemptFails
	cEstabResets
	cCurrEstab // gauge
	cInSegs
	cOutSegs
	cRetransSegs
	cInErrs
	cOutRsts
	cInCsumErrors
	cSyncookiesSent
	cSyncookiesRecv
	cSyncookiesFailed
	cEmbryonicRsts
	cListenOverflows
	cListenDrops
	cTCPReqQFullDoCookies
	cTCPReqQFullDrop
	cTCPBacklogDrop
	cTCPDeferAcceptDrop
	cTCPChallengeACK
	cTCPSYNChallenge
	cPAWSEstab
	cTCPTimeouts
	cTCPLossProbes
	cTCPFastRetrans
	cTCPSlowStartRetrans
	cTCPSackRecovery
	cTCPRenoRecovery
	cTCPOFOQueue
	cTCPOFODrop
	cTCPRcvQDrop
	cTCPZeroWindowDrop
	cDelayedACKs
	cTCPAbortOnData
	cTCPAbortOnClose
	cTCPAbortOnMemory
	cTCPAbortOnTimeout
	cOutOfWindowIcmps
	cLockDroppedIcmps
	cTCPBacklogCoalesce
	cDelayedACKLocked
	cTCPMigrateReqSuccess
	cTCPMigrateReqFailure
	cTCPAbortOnLinger
	cTCPAbortFailed
	cTCPTimeWaitOverflow
	cTW
	cTCPKeepAlive
	cTCPWinProbe
	cTCPOrigDataSent
	cTCPPureAcks
	cTCPDSACKRecv
	cTCPMaxConnDrop
	cTCPOptionErrors
	cTCPSynRetrans
	cTCPLostRetransmit
	cTCPSACKReorder
	cTCPFullUndo
	cTCPPartialUndo
	cTCPDSACKUndo
	cTCPLossUndo
	cTCPFlagsDrop // not in Linux's MIB: SKB_DROP_REASON_TCP_FLAGS
	cTCPACKSkippedSeq
	cTCPACKSkippedPAWS
	cTCPACKSkippedChallenge
	cTCPSACKReneging
	cTCPDSACKIgnoredOld
	cTCPDSACKIgnoredNoUndo
	cTCPSACKDiscard
	cTCPDSACKOfoRecv
	cTCPDSACKIgnoredDubious
	cTCPDSACKRecvSegs
	cTCPTSReorder
	cTCPRenoReorder
	cTCPSpuriousRTOs
	cTCPLossProbeRecovery
	cTCPOFOMerge
	cPruneCalled
	cOfoPruned
	cRcvPruned
	cTCPDSACKOldSent
	cTCPDSACKOfoSent
	cDelayedACKLost
	cTCPAckCompressed
	numCounters
)

var counterNames = [numCounters]string{
	cActiveOpens: "TcpActiveOpens", cPassiveOpens: "TcpPassiveOpens", cAttemptFails: "TcpAttemptFails",
	cEstabResets: "TcpEstabResets", cCurrEstab: "TcpCurrEstab", cInSegs: "TcpInSegs", cOutSegs: "TcpOutSegs",
	cRetransSegs: "TcpRetransSegs", cInErrs: "TcpInErrs", cOutRsts: "TcpOutRsts", cInCsumErrors: "TcpInCsumErrors",
	cSyncookiesSent: "TcpExtSyncookiesSent", cSyncookiesRecv: "TcpExtSyncookiesRecv",
	cSyncookiesFailed: "TcpExtSyncookiesFailed", cEmbryonicRsts: "TcpExtEmbryonicRsts",
	cListenOverflows: "TcpExtListenOverflows", cListenDrops: "TcpExtListenDrops",
	cTCPReqQFullDoCookies: "TcpExtTCPReqQFullDoCookies", cTCPReqQFullDrop: "TcpExtTCPReqQFullDrop",
	cTCPBacklogDrop: "TcpExtTCPBacklogDrop", cTCPDeferAcceptDrop: "TcpExtTCPDeferAcceptDrop",
	cTCPChallengeACK: "TcpExtTCPChallengeACK", cTCPSYNChallenge: "TcpExtTCPSYNChallenge",
	cPAWSEstab: "TcpExtPAWSEstab", cTCPTimeouts: "TcpExtTCPTimeouts", cTCPLossProbes: "TcpExtTCPLossProbes", cTCPFastRetrans: "TcpExtTCPFastRetrans", cTCPSlowStartRetrans: "TcpExtTCPSlowStartRetrans",
	cTCPSackRecovery: "TcpExtTCPSackRecovery", cTCPRenoRecovery: "TcpExtTCPRenoRecovery",
	cTCPOFOQueue: "TcpExtTCPOFOQueue", cTCPOFODrop: "TcpExtTCPOFODrop",
	cTCPRcvQDrop: "TcpExtTCPRcvQDrop", cTCPZeroWindowDrop: "TcpExtTCPZeroWindowDrop",
	cDelayedACKs: "TcpExtDelayedACKs", cTCPAbortOnData: "TcpExtTCPAbortOnData",
	cTCPAbortOnClose: "TcpExtTCPAbortOnClose", cTCPAbortOnMemory: "TcpExtTCPAbortOnMemory",
	cTCPAbortOnTimeout: "TcpExtTCPAbortOnTimeout", cOutOfWindowIcmps: "TcpExtOutOfWindowIcmps",
	cLockDroppedIcmps: "TcpExtLockDroppedIcmps", cTCPBacklogCoalesce: "TcpExtTCPBacklogCoalesce",
	cDelayedACKLocked:     "TcpExtDelayedACKLocked",
	cTCPMigrateReqSuccess: "TcpExtTCPMigrateReqSuccess", cTCPMigrateReqFailure: "TcpExtTCPMigrateReqFailure", cTCPAbortOnLinger: "TcpExtTCPAbortOnLinger",
	cTCPAbortFailed: "TcpExtTCPAbortFailed", cTCPTimeWaitOverflow: "TcpExtTCPTimeWaitOverflow",
	cTW: "TcpExtTW", cTCPKeepAlive: "TcpExtTCPKeepAlive", cTCPWinProbe: "TcpExtTCPWinProbe",
	cTCPOrigDataSent: "TcpExtTCPOrigDataSent",
	cTCPPureAcks:     "TcpExtTCPPureAcks", cTCPDSACKRecv: "TcpExtTCPDSACKRecv",
	cTCPMaxConnDrop: "TcpExtTCPMaxConnDrop", cTCPOptionErrors: "TcpExtTCPOptionErrors", cTCPSynRetrans: "TcpExtTCPSynRetrans",
	cTCPLostRetransmit: "TcpExtTCPLostRetransmit", cTCPSACKReorder: "TcpExtTCPSACKReorder",
	cTCPFullUndo: "TcpExtTCPFullUndo", cTCPPartialUndo: "TcpExtTCPPartialUndo",
	cTCPDSACKUndo: "TcpExtTCPDSACKUndo", cTCPLossUndo: "TcpExtTCPLossUndo",
	cTCPFlagsDrop: "TcpExtTCPFlagsDrop", cTCPACKSkippedSeq: "TcpExtTCPACKSkippedSeq",
	cTCPACKSkippedPAWS: "TcpExtTCPACKSkippedPAWS", cTCPACKSkippedChallenge: "TcpExtTCPACKSkippedChallenge",
	cTCPSACKReneging:        "TcpExtTCPSACKReneging",
	cTCPDSACKIgnoredOld:     "TcpExtTCPDSACKIgnoredOld",
	cTCPDSACKIgnoredNoUndo:  "TcpExtTCPDSACKIgnoredNoUndo",
	cTCPSACKDiscard:         "TcpExtTCPSACKDiscard",
	cTCPDSACKOfoRecv:        "TcpExtTCPDSACKOfoRecv",
	cTCPDSACKIgnoredDubious: "TcpExtTCPDSACKIgnoredDubious",
	cTCPDSACKRecvSegs:       "TcpExtTCPDSACKRecvSegs",
	cTCPTSReorder:           "TcpExtTCPTSReorder",
	cTCPRenoReorder:         "TcpExtTCPRenoReorder",
	cTCPSpuriousRTOs:        "TcpExtTCPSpuriousRTOs",
	cTCPLossProbeRecovery:   "TcpExtTCPLossProbeRecovery",
	cTCPOFOMerge:            "TcpExtTCPOFOMerge", cPruneCalled: "TcpExtPruneCalled", cOfoPruned: "TcpExtOfoPruned",
	cRcvPruned: "TcpExtRcvPruned", cTCPDSACKOldSent: "TcpExtTCPDSACKOldSent", cTCPDSACKOfoSent: "TcpExtTCPDSACKOfoSent",
	cDelayedACKLost: "TcpExtDelayedACKLost", cTCPAckCompressed: "TcpExtTCPAckCompressed",
}

// mib is the stack's counter set. Each counter is its own atomic so shard
// goroutines never contend on a lock to count.
type mib struct {
	v [numCounters]atomic.Uint64
}

func (m *mib) inc(c counter)           { m.v[c].Add(1) }
func (m *mib) add(c counter, n uint64) { m.v[c].Add(n) }
func (m *mib) dec(c counter)           { m.v[c].Add(^uint64(0)) }
func (m *mib) get(c counter) uint64    { return m.v[c].Load() }

// Counters visits every counter with its nstat name, Tcp* then TcpExt*.
func (s *Stack) Counters(visit func(name string, value uint64)) {
	for i := counter(0); i < numCounters; i++ {
		visit(counterNames[i], s.mib.get(i))
	}
	s.hystart.Counters(visit)
}

// Counter returns one counter by its nstat name (0 when unknown).
func (s *Stack) Counter(name string) uint64 {
	for i, n := range counterNames {
		if n == name {
			return s.mib.get(counter(i))
		}
	}
	var v uint64
	s.hystart.Counters(func(n string, x uint64) {
		if n == name {
			v = x
		}
	})
	return v
}
