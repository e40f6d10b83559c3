package ipv4

import "testing"

func TestCountersNamesAndOrder(t *testing.T) {
	h := newHarness(t)
	h.learnPeer(peerIP, peerMAC)
	h.inputIP(echoRequest(t, peerIP, ourIP, 1, 1, nil))
	var names []string
	seen := map[string]bool{}
	h.l.Counters(func(n string, _ uint64) {
		if seen[n] {
			t.Errorf("duplicate counter %s", n)
		}
		seen[n] = true
		names = append(names, n)
	})
	for _, n := range []string{"IpInReceives", "IpInHdrErrors", "IpInAddrErrors", "IpInUnknownProtos", "IpInDiscards",
		"IpInDelivers", "IpOutRequests", "IpOutNoRoutes", "IpReasmTimeout", "IpReasmReqds", "IpReasmOKs", "IpReasmFails",
		"IpFragOKs", "IpFragCreates", "IpExtInTruncatedPkts", "IpExtInCsumErrors", "IcmpInMsgs", "IcmpInErrors",
		"IcmpInCsumErrors", "IcmpInEchos", "IcmpOutEchoReps", "IcmpOutMsgs", "IcmpOutDestUnreachs", "IcmpOutTimeExcds",
		"IcmpMsgInType8", "IcmpMsgOutType0", "ArpCacheUnresolvedDiscards", "ArpCacheTableFulls"} {
		if !seen[n] {
			t.Errorf("missing counter %s", n)
		}
	}
	if names[0] != "IpInReceives" {
		t.Errorf("first counter %s", names[0])
	}
	var again []string
	h.l.Counters(func(n string, _ uint64) { again = append(again, n) })
	for i := range names {
		if names[i] != again[i] {
			t.Fatalf("order changed at %d: %s vs %s", i, names[i], again[i])
		}
	}
}
