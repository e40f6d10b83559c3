package driver

import (
	"crypto/rand"
	"net"
)

// RandomMAC returns a random locally administered unicast address (the U/L
// bit set, the I/G bit clear, as eth_random_addr does), so the stack never
// collides with the kernel's side of a TAP or a vendor-assigned address.
func RandomMAC() net.HardwareAddr {
	mac := make(net.HardwareAddr, 6)
	if _, err := rand.Read(mac); err != nil {
		panic("driver: crypto/rand: " + err.Error())
	}
	mac[0] = mac[0]&^0x01 | 0x02
	return mac
}
