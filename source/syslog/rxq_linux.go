package syslog

import (
	"encoding/binary"
	"net"
	"net/netip"
	"unsafe"

	"golang.org/x/sys/unix"
)

// enableRxqOvfl asks the kernel to attach to each datagram the count of
// datagrams it dropped on the socket so far (SO_RXQ_OVFL), and reports
// whether it did.
func enableRxqOvfl(u *net.UDPConn) bool {
	rc, err := u.SyscallConn()
	if err != nil {
		return false
	}
	var serr error
	if err := rc.Control(func(fd uintptr) {
		serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RXQ_OVFL, 1)
	}); err != nil || serr != nil {
		return false
	}
	return true
}

// oobSize is the control-message space one SO_RXQ_OVFL count needs.
var oobSize = unix.CmsgSpace(4)

// readUDP reads one datagram and returns, with ok, the kernel's count of
// the socket's drops the datagram carried (absent until the first drop).
func readUDP(u *net.UDPConn, buf, oob []byte) (n int, from netip.AddrPort, drops uint32, ok bool, err error) {
	n, oobn, _, from, err := u.ReadMsgUDPAddrPort(buf, oob)
	if err != nil {
		return n, from, 0, false, err
	}
	drops, ok = parseRxqOvfl(oob[:oobn])
	return n, from, drops, ok, nil
}

// parseRxqOvfl finds an SO_RXQ_OVFL count in control messages, without
// allocating.
func parseRxqOvfl(b []byte) (uint32, bool) {
	for len(b) >= unix.SizeofCmsghdr {
		h := (*unix.Cmsghdr)(unsafe.Pointer(&b[0]))
		l := int(h.Len)
		if l < unix.SizeofCmsghdr || l > len(b) {
			return 0, false
		}
		if h.Level == unix.SOL_SOCKET && h.Type == unix.SO_RXQ_OVFL && l >= unix.CmsgLen(4) {
			d := b[unix.CmsgLen(0):]
			return binary.NativeEndian.Uint32(d[:4]), true
		}
		b = b[min(unix.CmsgSpace(l-unix.SizeofCmsghdr), len(b)):]
	}
	return 0, false
}
