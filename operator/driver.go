package operator

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/teleop/teleop/clock"
	"github.com/teleop/teleop/signaling"
)

// Defaults of Options.
const (
	DefaultRate       = 50 * time.Millisecond  // 20 drives a second while held
	DefaultHold       = 600 * time.Millisecond // covers a keyboard's auto-repeat delay
	DefaultRepeatHold = 300 * time.Millisecond // several auto-repeat intervals
	DefaultMaxLinear  = 0.5                    // m/s, as the web console
	DefaultMaxAngular = 1.5                    // rad/s
	DefaultSteps      = 4                      // speed steps of 25 %
	DefaultStep       = 2                      // 50 %
)

// Signal types the driver sends and reads: the agent's defaults
// (docs/configuration.md).
const (
	TypeDrive     = "drive"
	TypeStop      = "stop"
	TypeEstop     = "estop"
	TypeClear     = "clear"
	TypeControl   = "control"
	TypeAck       = "ack"
	TypeTelemetry = "telemetry"
	TypeStatus    = "status"
)

// sentLimit is how many sent ids the Driver remembers to match acks with
// (about 50 s of driving at 20 Hz).
const sentLimit = 1024

// Options configure a Driver. Zero fields take the defaults above.
type Options struct {
	// Clock times the drive rate and the hold. Nil means clock.Real.
	Clock clock.Clock

	// Send hands a signal to whatever sends it. The Driver calls it with
	// its lock held, in the order the signals must go out, so it must not
	// block and must not call the Driver. Required.
	Send func(signaling.Signal)

	// Rate is the period of drive signals while a key is held.
	Rate time.Duration

	// Terminals report no key release, only the keyboard's auto-repeat:
	// the first repeat comes after the repeat delay (250–660 ms), the next
	// ones every 25–50 ms. A key counts as held until Hold has passed since
	// its first press without a repeat, or RepeatHold since its latest
	// repeat, so a release is seen RepeatHold after the last repeat.
	Hold       time.Duration
	RepeatHold time.Duration

	// MaxLinear (m/s) and MaxAngular (rad/s) are the speeds of the top
	// step; step k of Steps drives at k/Steps of them. Step is the initial
	// step.
	MaxLinear, MaxAngular float64
	Steps, Step           int

	// To picks the robot when the session has several: a connection ID or
	// a robot's name (ChooseRobot).
	To string
}

func (o *Options) withDefaults() Options {
	var c Options
	if o != nil {
		c = *o
	}
	c.Clock = clock.Or(c.Clock)
	if c.Rate <= 0 {
		c.Rate = DefaultRate
	}
	if c.Hold <= 0 {
		c.Hold = DefaultHold
	}
	if c.RepeatHold <= 0 {
		c.RepeatHold = DefaultRepeatHold
	}
	if c.MaxLinear <= 0 {
		c.MaxLinear = DefaultMaxLinear
	}
	if c.MaxAngular <= 0 {
		c.MaxAngular = DefaultMaxAngular
	}
	if c.Steps <= 0 {
		c.Steps = DefaultSteps
	}
	if c.Step <= 0 {
		c.Step = min(DefaultStep, c.Steps)
	}
	c.Step = min(c.Step, c.Steps)
	return c
}

// LinkState is the state of the session's connection to the relay.
type LinkState int

const (
	LinkConnecting LinkState = iota
	LinkConnected
	LinkReconnecting
	LinkDisconnected
)

func (s LinkState) String() string {
	switch s {
	case LinkConnecting:
		return "connecting"
	case LinkConnected:
		return "connected"
	case LinkReconnecting:
		return "reconnecting"
	case LinkDisconnected:
		return "disconnected"
	}
	return "LinkState(" + strconv.Itoa(int(s)) + ")"
}

// motion is what a motion key asks for: the signs of linear and angular
// speed, and one step faster when boost.
type motion struct {
	lin, ang int
	boost    bool
}

var motions = map[Key]motion{
	'w': {lin: 1}, 's': {lin: -1}, 'a': {ang: 1}, 'd': {ang: -1},
	'W': {lin: 1, boost: true}, 'S': {lin: -1, boost: true}, 'A': {ang: 1, boost: true}, 'D': {ang: -1, boost: true},
	KeyUp: {lin: 1}, KeyDown: {lin: -1}, KeyLeft: {ang: 1}, KeyRight: {ang: -1},
	KeyShiftUp: {lin: 1, boost: true}, KeyShiftDown: {lin: -1, boost: true},
	KeyShiftLeft: {ang: 1, boost: true}, KeyShiftRight: {ang: -1, boost: true},
}

// IsMotion reports whether k drives while held.
func IsMotion(k Key) bool { _, ok := motions[k]; return ok }

// Command is the latest thing the Driver sent to the robot for its
// motion: a drive while a key is held, then the stop of its release.
type Command struct {
	Type    string // "drive", "stop", "estop", or "" before anything was sent
	Linear  float64
	Angular float64
	Holding bool // a key is held: drives go out at Options.Rate
}

// AckEvent is a received ack with what the Driver knows about its send.
type AckEvent struct {
	Ack
	// Latency is the time from the send of this id to the ack; zero when
	// the id is unknown (HasLatency false).
	Latency    time.Duration
	HasLatency bool
	At         time.Time // when the ack arrived
}

// Note is a message for the operator, shown for a while.
type Note struct {
	Text string
	At   time.Time
}

// View is a snapshot of everything the terminal shows.
type View struct {
	Now        time.Time
	Link       LinkState
	LinkReason string
	Self       string // this connection's ID

	Robot   Robot   // the robot being driven; zero when none
	Problem string  // why nothing can be driven, e.g. no robot yet
	Robots  []Robot // every robot in the session

	Step, Steps     int
	Linear, Angular float64 // the speeds of the current step
	Command         Command

	LastAck    *AckEvent // the newest ack
	LastReject *AckEvent // the newest ack that is not Fine
	Acked      int       // acks that were Fine
	Rejected   int       // acks that were not

	Estop   bool   // an e-stop is latched (ours until cleared, or per status)
	EstopBy string // who latched it, by name, when status says

	HasLease    bool   // status told who holds the lease
	LeaseHolder string // "you", a name, or "" for nobody

	Telemetry    Telemetry
	HasTelemetry bool

	Note Note // the newest message (key refused, send failed, …)
}

type sentRecord struct {
	typ    string
	at     time.Time
	action string // control: acquire or release
}

// A Driver turns keys into signals and keeps the operator's view of the
// session. Feed it keys (Key), the connection's state (SetLink, SetSelf,
// SetConnections) and received signals (Received); read View after
// Changed fires. All methods are safe for concurrent use.
//
// The deadman rule: a motion key sends drive at once and then every Rate
// while it is held (Options.Hold); when it is released one stop follows,
// then nothing. A hold also ends, with its stop, when the link changes
// state, when the robot changes, and on space. After such an end, a key
// still held must be released before it drives again. Drives are sent only
// while connected and never queued for a reconnect (NoRetry); stop and
// e-stop may wait for one, since a late stop is safe. E-stop goes to every
// connection and replaces the stop of the hold it ends; after it no drive
// is sent until the e-stop is cleared.
type Driver struct {
	o       Options
	clk     clock.Clock
	changed chan struct{} // cap 1

	mu sync.Mutex
	// Guarded by mu.
	link       LinkState
	linkReason string
	self       string
	conns      []signaling.Connection
	agents     map[string]bool   // connections that sent telemetry or status
	statuses   map[string]string // the last status data from each connection, applied when it becomes the robot
	robot      Robot
	problem    string
	robots     []Robot
	step       int

	holding  bool      // a motion key is held: drives go out
	suppress bool      // a key still held after a forced end: ignored until released
	motion   motion    // the held (or suppressed) key's motion
	pressed  time.Time // its latest press or repeat
	repeated bool      // a repeat of it has arrived
	timer    clock.Timer
	gen      uint64 // invalidates a timer callback that raced with Stop
	cmd      Command

	nextID    int64
	sent      map[string]sentRecord
	sentOrder []string // ids in sent, oldest first

	estopLocal  bool   // we sent an e-stop that no clear has released yet
	estopUnack  string // id of our newest e-stop until its ack
	estopStatus bool   // status says latched
	estopBy     string
	clearID     string // our newest clear

	hasLease    bool
	leaseHolder string

	tlm    Telemetry
	hasTlm bool

	lastAck, lastReject *AckEvent
	acked, rejected     int
	note                Note
}

// NewDriver returns a Driver. o.Send is required.
func NewDriver(o *Options) *Driver {
	opts := o.withDefaults()
	if opts.Send == nil {
		panic("operator: NewDriver without Options.Send")
	}
	d := &Driver{
		o:        opts,
		clk:      opts.Clock,
		changed:  make(chan struct{}, 1),
		agents:   map[string]bool{},
		statuses: map[string]string{},
		sent:     map[string]sentRecord{},
		step:     opts.Step,
		link:     LinkConnecting,
	}
	d.robot, d.problem = Robot{}, "not connected yet"
	return d
}

// Changed receives after the View has changed. It holds at most one
// pending notification.
func (d *Driver) Changed() <-chan struct{} { return d.changed }

func (d *Driver) touchLocked() {
	select {
	case d.changed <- struct{}{}:
	default:
	}
}

func (d *Driver) noteLocked(format string, args ...any) {
	d.note = Note{Text: fmt.Sprintf(format, args...), At: d.clk.Now()}
}

// Key handles one key press. Quitting is the caller's business: q and
// Ctrl-C are not handled here.
func (d *Driver) Key(k Key) {
	d.mu.Lock()
	defer d.mu.Unlock()
	defer d.touchLocked()
	if m, ok := motions[k]; ok {
		d.motionLocked(m)
		return
	}
	switch k {
	case ' ':
		d.stopLocked()
	case 'e', 'E', KeyEsc:
		d.estopLocked()
	case 'c', 'C':
		d.clearLocked()
	case 'l', 'L':
		d.controlLocked()
	case '+', '=':
		d.setStepLocked(d.step + 1)
	case '-', '_':
		d.setStepLocked(d.step - 1)
	default:
		if k >= '1' && k <= '9' && int(k-'0') <= d.o.Steps {
			d.setStepLocked(int(k - '0'))
			return
		}
		d.noteLocked("key %s does nothing here", k)
	}
}

// holdLocked is how long the current key counts as held after its latest
// press.
func (d *Driver) holdLocked() time.Duration {
	if d.repeated {
		return d.o.RepeatHold
	}
	return d.o.Hold
}

func (d *Driver) releasedLocked(now time.Time) bool {
	return now.Sub(d.pressed) >= d.holdLocked()
}

func (d *Driver) motionLocked(m motion) {
	now := d.clk.Now()
	if d.suppress {
		if m == d.motion && !d.releasedLocked(now) {
			d.pressed, d.repeated = now, true
			return // still the key held across the forced end
		}
		d.suppress = false
	}
	if d.holding {
		if m == d.motion {
			d.pressed, d.repeated = now, true
			return
		}
		// Another key: terminals repeat only the newest key, so this is the
		// new hold. It drives now and the rate restarts from here.
		d.motion, d.pressed, d.repeated = m, now, false
		d.driveLocked()
		d.armLocked()
		return
	}
	switch {
	case d.estopLocal || d.estopStatus:
		d.noteLocked("e-stop latched: press c to clear it before driving")
		return
	case d.link != LinkConnected:
		d.noteLocked("%s: not driving", d.link)
		return
	case d.robot.ID == "":
		d.noteLocked("%s", d.problem)
		return
	}
	d.holding, d.motion, d.pressed, d.repeated = true, m, now, false
	d.driveLocked()
	d.armLocked()
}

// armLocked (re)starts the rate timer.
func (d *Driver) armLocked() {
	if d.timer != nil {
		d.timer.Stop()
	}
	d.gen++
	gen := d.gen
	d.timer = d.clk.AfterFunc(d.o.Rate, func() { d.tick(gen) })
}

func (d *Driver) disarmLocked() {
	if d.timer != nil {
		d.timer.Stop()
		d.timer = nil
	}
	d.gen++
}

// tick is the rate timer: one more drive while the key is held, the stop
// once it is released.
func (d *Driver) tick(gen uint64) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if gen != d.gen || !d.holding {
		return
	}
	defer d.touchLocked()
	if d.releasedLocked(d.clk.Now()) {
		d.endHoldLocked(true, false)
		return
	}
	d.driveLocked()
	d.armLocked()
}

// endHoldLocked ends a hold: with its one stop when stop is set, and with
// the key ignored until released when suppress is set.
func (d *Driver) endHoldLocked(stop, suppress bool) {
	if !d.holding {
		return
	}
	d.holding = false
	d.disarmLocked()
	d.suppress = suppress
	if stop {
		d.sendStopLocked(d.robot.ID)
	}
}

// speedsLocked returns the speeds of the current step, one step more with
// boost.
func (d *Driver) speedsLocked(boost bool) (linear, angular float64) {
	step := d.step
	if boost {
		step = min(step+1, d.o.Steps)
	}
	f := float64(step) / float64(d.o.Steps)
	return round3(d.o.MaxLinear * f), round3(d.o.MaxAngular * f)
}

func (d *Driver) driveLocked() {
	lin, ang := d.speedsLocked(d.motion.boost)
	lin, ang = round3(lin*float64(d.motion.lin)), round3(ang*float64(d.motion.ang))
	d.sendLocked(TypeDrive, d.robot.ID, true, `,"linear":`+num3(lin)+`,"angular":`+num3(ang))
	d.cmd = Command{Type: TypeDrive, Linear: lin, Angular: ang, Holding: true}
}

func (d *Driver) sendStopLocked(to string) {
	if to == "" {
		return
	}
	d.sendLocked(TypeStop, to, false, "")
	d.cmd = Command{Type: TypeStop}
}

// stopLocked is space: end a hold with its stop, or send a stop anyway.
func (d *Driver) stopLocked() {
	if d.holding {
		// No suppression: pressing space ended the held key's auto-repeat,
		// so the next press of it is a new one.
		d.endHoldLocked(true, false)
		return
	}
	if d.robot.ID == "" {
		d.noteLocked("%s", d.problem)
		return
	}
	d.sendStopLocked(d.robot.ID)
}

// estopLocked sends an e-stop to every connection of the session. It ends
// a hold without the hold's stop: the e-stop replaces it.
func (d *Driver) estopLocked() {
	d.endHoldLocked(false, true)
	d.estopUnack = d.sendLocked(TypeEstop, "", false, "")
	d.estopLocal = true
	d.cmd = Command{Type: TypeEstop}
}

// clearLocked asks the robot to release a latched e-stop. It is never
// queued: a release later than asked is not safe.
func (d *Driver) clearLocked() {
	if d.robot.ID == "" {
		d.noteLocked("%s", d.problem)
		return
	}
	d.clearID = d.sendLocked(TypeClear, d.robot.ID, true, "")
}

// controlLocked asks for the lease, or gives it back when this connection
// holds it.
func (d *Driver) controlLocked() {
	if d.robot.ID == "" {
		d.noteLocked("%s", d.problem)
		return
	}
	action := "acquire"
	if d.hasLease && d.leaseHolder == d.self && d.self != "" {
		action = "release"
	}
	id := d.sendLocked(TypeControl, d.robot.ID, true, `,"action":"`+action+`"`)
	rec := d.sent[id]
	rec.action = action
	d.sent[id] = rec
	d.noteLocked("control: %s sent", action)
}

func (d *Driver) setStepLocked(step int) {
	d.step = max(1, min(step, d.o.Steps))
}

// sendLocked sends a signal whose data is {"id":<the next id><fields>},
// remembers when, and returns the id.
func (d *Driver) sendLocked(typ, to string, noRetry bool, fields string) string {
	d.nextID++
	id := strconv.FormatInt(d.nextID, 10)
	d.sent[id] = sentRecord{typ: typ, at: d.clk.Now()}
	d.sentOrder = append(d.sentOrder, id)
	if len(d.sentOrder) > sentLimit {
		delete(d.sent, d.sentOrder[0])
		d.sentOrder = d.sentOrder[1:]
	}
	d.o.Send(signaling.Signal{Type: typ, Data: `{"id":` + id + fields + `}`, To: to, NoRetry: noRetry})
	return id
}

// SetLink tells the Driver the connection's state, with why for
// reconnecting and disconnected. A change ends a hold (with its stop: a
// stop made while reconnecting waits for the reconnect).
func (d *Driver) SetLink(s LinkState, reason string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	defer d.touchLocked()
	if s != d.link {
		d.endHoldLocked(true, true)
	}
	d.link, d.linkReason = s, reason
	if s == LinkConnected {
		d.chooseLocked()
	}
}

// SetSelf tells the Driver this client's connection ID.
func (d *Driver) SetSelf(id string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	defer d.touchLocked()
	d.self = id
	d.chooseLocked()
}

// SetConnections tells the Driver the session's connections. A hold ends
// (with a stop to the robot it drove) when the robot changes.
func (d *Driver) SetConnections(conns []signaling.Connection) {
	d.mu.Lock()
	defer d.mu.Unlock()
	defer d.touchLocked()
	d.conns = conns
	present := map[string]bool{}
	for _, c := range conns {
		present[c.ConnectionID] = true
	}
	for id := range d.agents {
		if !present[id] {
			delete(d.agents, id)
		}
	}
	for id := range d.statuses {
		if !present[id] {
			delete(d.statuses, id)
		}
	}
	d.chooseLocked()
}

func (d *Driver) chooseLocked() {
	if d.self == "" {
		return
	}
	d.robots = Robots(d.conns, d.self, d.agents)
	r, problem := ChooseRobot(d.conns, d.self, d.o.To, d.agents)
	if r.ID != d.robot.ID {
		d.endHoldLocked(true, true) // the stop goes to the robot that was driven
		if d.robot.ID != "" {
			// What we knew of the old robot does not describe the new one.
			d.hasTlm, d.hasLease, d.leaseHolder, d.estopStatus, d.estopBy = false, false, "", false, ""
		}
	}
	changed := r.ID != d.robot.ID
	d.robot, d.problem = r, problem
	if changed && r.ID != "" {
		// An agent sends its status when someone joins, which may be before
		// we knew it was the robot: what it said then still holds.
		if data, ok := d.statuses[r.ID]; ok {
			d.applyStatusLocked(data)
		}
	}
}

// Received handles a signal received from the session: ack, telemetry and
// status; other types are ignored.
func (d *Driver) Received(sig signaling.Signal) {
	switch sig.Type {
	case TypeAck:
		d.ack(sig)
	case TypeTelemetry, TypeStatus:
		d.report(sig)
	}
}

func (d *Driver) ack(sig signaling.Signal) {
	a, ok := ReadAck(sig.Data)
	if !ok {
		return
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	rec, known := d.sent[a.ID]
	if !known {
		return // not one of ours (an ack to everyone), or long forgotten
	}
	defer d.touchLocked()
	now := d.clk.Now()
	if a.Type == "" {
		a.Type = rec.typ
	}
	a.Reason = d.namesLocked(a.Reason)
	ev := &AckEvent{Ack: a, Latency: now.Sub(rec.at), HasLatency: true, At: now}
	d.lastAck = ev
	if !a.Fine() {
		d.rejected++
		d.lastReject = ev
		return
	}
	d.acked++
	switch rec.typ {
	case TypeEstop:
		if a.ID == d.estopUnack {
			d.estopUnack = ""
		}
	case TypeClear:
		if a.ID == d.clearID {
			d.estopLocal, d.estopUnack, d.estopStatus, d.estopBy = false, "", false, ""
			d.noteLocked("e-stop cleared")
		}
	case TypeControl:
		// The status that follows says for sure; until then, believe the ack.
		d.hasLease, d.leaseHolder = true, ""
		if rec.action == "acquire" {
			d.leaseHolder = d.self
		}
	}
}

func (d *Driver) report(sig signaling.Signal) {
	d.mu.Lock()
	defer d.mu.Unlock()
	defer d.touchLocked()
	if sig.From != "" && sig.From != d.self && !d.agents[sig.From] {
		d.agents[sig.From] = true // whoever sends telemetry or status is an agent
		d.chooseLocked()
	}
	if sig.Type == TypeStatus && sig.From != "" {
		d.statuses[sig.From] = sig.Data
	}
	if sig.From != d.robot.ID || d.robot.ID == "" {
		return // another robot's, or sent before we chose one
	}
	if sig.Type == TypeTelemetry {
		if t, ok := ReadTelemetry(sig.Data); ok {
			d.tlm, d.hasTlm = t, true
		}
		return
	}
	d.applyStatusLocked(sig.Data)
}

// applyStatusLocked takes in the robot's status.
func (d *Driver) applyStatusLocked(data string) {
	st, ok := ReadStatus(data)
	if !ok {
		return
	}
	if st.HasEstop {
		switch {
		case st.Estop:
			if !d.estopStatus {
				d.endHoldLocked(true, true)
			}
			d.estopStatus, d.estopBy = true, st.EstopBy
		case d.estopUnack == "":
			// Cleared, by us or anyone. (A status sent before our e-stop
			// arrived would say "not latched": until its ack we keep ours.)
			d.estopStatus, d.estopBy, d.estopLocal = false, "", false
		}
	}
	if st.HasLease {
		d.hasLease, d.leaseHolder = true, st.LeaseHolder
	}
}

// SendFailed tells the Driver that sig could not be sent.
func (d *Driver) SendFailed(sig signaling.Signal, err error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	defer d.touchLocked()
	var se *signaling.Error
	if errors.As(err, &se) {
		d.noteLocked("%s not sent: %d %s", sig.Type, se.Code, d.namesLocked(se.Message))
		return
	}
	d.noteLocked("%s not sent: %v", sig.Type, err)
}

// Close ends a hold with its stop and stops the timer. Keys that come
// after it still work; the caller stops feeding them.
func (d *Driver) Close() {
	d.mu.Lock()
	defer d.mu.Unlock()
	defer d.touchLocked()
	d.endHoldLocked(true, true)
}

// namesLocked replaces the connection IDs in s with names.
func (d *Driver) namesLocked(s string) string {
	for _, c := range d.conns {
		if c.ConnectionID != "" && strings.Contains(s, c.ConnectionID) {
			s = strings.ReplaceAll(s, c.ConnectionID, d.nameLocked(c.ConnectionID))
		}
	}
	return s
}

// nameLocked is how a connection is shown: "you", its name, or its short ID.
func (d *Driver) nameLocked(id string) string {
	if id == "" {
		return ""
	}
	if id == d.self {
		return "you"
	}
	for _, c := range d.conns {
		if c.ConnectionID == id {
			return Name(c)
		}
	}
	return ShortID(id)
}

// View returns a snapshot of the operator's view.
func (d *Driver) View() View {
	d.mu.Lock()
	defer d.mu.Unlock()
	v := View{
		Now: d.clk.Now(), Link: d.link, LinkReason: d.linkReason, Self: d.self,
		Robot: d.robot, Problem: d.problem, Robots: slices.Clone(d.robots),
		Step: d.step, Steps: d.o.Steps, Command: d.cmd,
		Acked: d.acked, Rejected: d.rejected,
		Estop:    d.estopLocal || d.estopStatus,
		EstopBy:  d.nameLocked(d.estopBy),
		HasLease: d.hasLease, LeaseHolder: d.nameLocked(d.leaseHolder),
		Telemetry: d.tlm, HasTelemetry: d.hasTlm,
		Note: d.note,
	}
	if v.Estop && v.EstopBy == "" && d.estopLocal {
		v.EstopBy = "you"
	}
	v.Linear, v.Angular = d.speedsLocked(false)
	v.Command.Holding = d.holding
	if d.lastAck != nil {
		a := *d.lastAck
		v.LastAck = &a
	}
	if d.lastReject != nil {
		a := *d.lastReject
		v.LastReject = &a
	}
	return v
}

// round3 rounds to millimetres (m/s, rad/s) and turns -0 into 0.
func round3(v float64) float64 {
	r := math.Round(v*1000) / 1000
	if r == 0 {
		return 0
	}
	return r
}

func num3(v float64) string { return strconv.FormatFloat(v, 'f', -1, 64) }
