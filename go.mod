module github.com/tapstack/tapstack

go 1.26.0

require (
	github.com/google/gopacket v1.1.19 // indirect
	github.com/songgao/water v0.0.0-20200317203138-2b4b6d7c09d8 // indirect
	golang.org/x/sys v0.49.0 // indirect
)
