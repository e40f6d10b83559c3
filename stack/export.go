package stack

import (
	"encoding/json"
	"io"
)

// The Prometheus collector lives in package metrics, so that importing stack
// does not pull in client_golang and protobuf.

// statsJSON is the JSON form of a snapshot: counters as an object keyed by
// nstat name, softnet rows as an array indexed by shard.
type statsJSON struct {
	Counters map[string]uint64 `json:"counters"`
	Softnet  []softnetJSON     `json:"softnet"`
}

type softnetJSON struct {
	Processed   uint64 `json:"processed"`
	Dropped     uint64 `json:"dropped"`
	TimeSqueeze uint64 `json:"time_squeeze"`
	BacklogLen  uint64 `json:"backlog_len"`
}

// WriteJSON writes the snapshot as one JSON object.
func (st Stats) WriteJSON(w io.Writer) error {
	out := statsJSON{Counters: make(map[string]uint64, len(st.Counters)), Softnet: []softnetJSON{}}
	for _, c := range st.Counters {
		out.Counters[c.Name] = c.Value
	}
	for _, sn := range st.Softnet {
		out.Softnet = append(out.Softnet, softnetJSON{sn.Processed, sn.Dropped, sn.TimeSqueeze, uint64(sn.BacklogLen)})
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(out)
}
