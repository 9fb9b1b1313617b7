package token

// Role is what a connection may do in a session. The values are the wire strings of
// the OpenTok token "role" claim.
type Role string

const (
	// Publisher may publish, subscribe and signal. It is the default role.
	Publisher Role = "publisher"
	// Subscriber may subscribe and signal.
	Subscriber Role = "subscriber"
	// Moderator is a publisher that may also force other connections to disconnect.
	Moderator Role = "moderator"
	// PublisherOnly may publish but neither subscribe nor signal.
	PublisherOnly Role = "publisheronly"
)

// ParseRole returns the role named s. The empty string is Publisher, as in the SDKs.
// Names are case-sensitive, as the OpenTok service treats them.
func ParseRole(s string) (Role, error) {
	switch r := Role(s); r {
	case "":
		return Publisher, nil
	case Publisher, Subscriber, Moderator, PublisherOnly:
		return r, nil
	}
	return "", errorf(ErrRole, "role %q is not one of publisher, subscriber, moderator, publisheronly", s)
}

// CanSignal reports whether a connection with this role may send signals.
// OpenTok restricts only publisheronly tokens from signaling.
func (r Role) CanSignal() bool {
	return r == Publisher || r == Moderator || r == Subscriber
}

// CanForceDisconnect reports whether a connection with this role may disconnect others.
func (r Role) CanForceDisconnect() bool { return r == Moderator }
