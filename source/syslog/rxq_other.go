//go:build !linux

package syslog

import (
	"net"
	"net/netip"
)

// enableRxqOvfl reports false: SO_RXQ_OVFL is Linux's.
func enableRxqOvfl(*net.UDPConn) bool { return false }

const oobSize = 0

func readUDP(u *net.UDPConn, buf, _ []byte) (int, netip.AddrPort, uint32, bool, error) {
	n, from, err := u.ReadFromUDPAddrPort(buf)
	return n, from, 0, false, err
}
