package operator

import (
	"fmt"
	"strings"

	"github.com/teleop/teleop/signaling"
)

// Robot is a connection that can be driven.
type Robot struct {
	ID   string
	Name string
}

// robotRoles are the connection-data roles of an agent.
var robotRoles = map[string]bool{"robot": true, "agent": true}

// IsRobot reports whether a connection's data names it a robot: role=robot
// (or role=agent).
func IsRobot(c signaling.Connection) bool {
	return robotRoles[strings.ToLower(ConnData(c.Data)["role"])]
}

// Name is how a connection is shown: its data's name (or user, username),
// else the start of its ID.
func Name(c signaling.Connection) string {
	f := ConnData(c.Data)
	for _, k := range []string{"name", "user", "username"} {
		if f[k] != "" {
			return f[k]
		}
	}
	return ShortID(c.ConnectionID)
}

// ShortID shortens a connection ID for display.
func ShortID(id string) string {
	if len(id) > 10 {
		return id[:8] + "…"
	}
	return id
}

// Robots lists the robots among conns, never self: connections whose data
// says so (IsRobot) or that are in agents (they sent the agent's telemetry
// or status).
func Robots(conns []signaling.Connection, self string, agents map[string]bool) []Robot {
	var robots []Robot
	for _, c := range conns {
		if c.ConnectionID != self && (IsRobot(c) || agents[c.ConnectionID]) {
			robots = append(robots, Robot{c.ConnectionID, Name(c)})
		}
	}
	return robots
}

// ChooseRobot picks the robot to drive among conns, never self. A
// connection is a robot when its data says so (IsRobot) or when it is in
// agents (it sent the agent's telemetry or status). With to set, it is the
// connection with that ID, or the one robot with that name. Otherwise there
// must be exactly one robot. problem says why there is no robot to drive.
func ChooseRobot(conns []signaling.Connection, self, to string, agents map[string]bool) (r Robot, problem string) {
	if to != "" {
		var named []Robot
		for _, c := range conns {
			if c.ConnectionID == self {
				continue
			}
			if c.ConnectionID == to {
				return Robot{c.ConnectionID, Name(c)}, ""
			}
			if (IsRobot(c) || agents[c.ConnectionID]) && Name(c) == to {
				named = append(named, Robot{c.ConnectionID, Name(c)})
			}
		}
		switch len(named) {
		case 0:
			return Robot{}, fmt.Sprintf("%s is not in this session — is the agent running?", to)
		case 1:
			return named[0], ""
		}
		return Robot{}, fmt.Sprintf("%d robots are named %s: pass --to with a connection ID (%s)", len(named), to, list(named))
	}
	robots := Robots(conns, self, agents)
	switch len(robots) {
	case 0:
		return Robot{}, "No robot in this session yet — start the agent"
	case 1:
		return robots[0], ""
	}
	return Robot{}, fmt.Sprintf("%d robots in this session: pass --to with a name or ID (%s)", len(robots), list(robots))
}

// list names robots for a status line: the name and the start of the ID.
func list(rs []Robot) string {
	var b strings.Builder
	for i, r := range rs {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(r.Name)
		if short := ShortID(r.ID); r.Name != short {
			b.WriteString(" " + short)
		}
	}
	return b.String()
}
