package compare

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	"github.com/gorilla/websocket"
	"github.com/nats-io/nats.go"

	"github.com/teleop/teleop/signaling/relay/relaybench"
	"github.com/teleop/teleop/signaling/token"
)

// The clients, one per protocol, each the lowest-overhead correct one:
//   - teleop server: gorilla/websocket with hand-built signal frames and a
//     reader that looks only at the fields it needs (what relaybench does);
//     the teleop signaling client would add its reconnect queue and JSON
//     decoding of every frame.
//   - mosquitto: eclipse paho (MQTT 3.1.1, QoS 0) on a buffered connection:
//     paho reads each packet's header byte by byte from what it is given,
//     so it is given a bufio.Reader (32 KB) instead of the bare socket.
//   - nats-server: nats.go, which buffers and batches writes itself;
//     callbacks on async subscriptions.
const (
	relayClientName = "gorilla/websocket (raw signal frames)"
	mqttClientName  = "eclipse/paho.mqtt.golang, QoS 0, buffered reads"
	natsClientName  = "nats-io/nats.go, async subscriptions"
	dialWait        = 10 * time.Second
)

// A driver connects clients of one protocol to one running server.
type driver interface {
	// connect opens a client in group (a session; a topic or subject
	// prefix). Unless msg is nil the client receives the group's
	// broadcasts and messages sent to its id, and msg is called with the
	// payload of each (from the client's receiving goroutines; the payload
	// is only valid during the call). ack, if not nil, is called for each
	// acknowledged send (the relay's results; MQTT QoS 0 and NATS core have
	// none).
	connect(ctx context.Context, group string, msg func([]byte), ack func()) (client, error)
	// dialIdle opens a bare connection that completes the protocol's
	// handshake and joins (subscribes to) group, then stays idle: no
	// goroutine or buffer on the client side.
	dialIdle(ctx context.Context, group string) (net.Conn, error)
}

// A client is one connection. send is called from one goroutine at a time.
type client interface {
	id() string
	// send sends payload to the client with id to, or to the whole group
	// when to is "". payload is not retained.
	send(to string, payload []byte) error
	// acks is the number of sends acknowledged so far; ok is false when
	// the protocol has no acknowledgements.
	acks() (n int64, ok bool)
	// close closes the connection, waits for the client's goroutines and
	// returns the first error the client saw (a refused send, a lost
	// connection), if any.
	close() error
}

func newDriver(s *server) (driver, error) {
	if err := checkLoopback(s.addr); err != nil {
		return nil, err
	}
	switch s.kind {
	case Teleop:
		return &relayDriver{s: s, url: "ws://" + s.addr + "/v1/connect", dialer: &websocket.Dialer{
			HandshakeTimeout: dialWait,
			// Room for an 8 KB signal in one frame and one write.
			ReadBufferSize: 16 << 10, WriteBufferSize: 16 << 10,
		}}, nil
	case Mosquitto:
		return &mqttDriver{s: s}, nil
	case NATS:
		return &natsDriver{s: s}, nil
	}
	return nil, fmt.Errorf("no client for %v", s.kind)
}

func clientName(k Kind) string {
	switch k {
	case Teleop:
		return relayClientName
	case Mosquitto:
		return mqttClientName
	case NATS:
		return natsClientName
	}
	return ""
}

// firstErr keeps the first error a client's goroutines report.
type firstErr struct {
	mu  sync.Mutex
	err error
}

func (f *firstErr) set(err error) {
	f.mu.Lock()
	if f.err == nil {
		f.err = err
	}
	f.mu.Unlock()
}

func (f *firstErr) get() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.err
}

// ---- teleop server: the session protocol over WebSocket ----

type relayDriver struct {
	s      *server
	url    string
	dialer *websocket.Dialer
}

func (d *relayDriver) token(group string) (string, error) {
	return token.New(d.s.key, d.s.secret, group, &token.Options{TTL: time.Hour})
}

func (d *relayDriver) connect(ctx context.Context, group string, msg func([]byte), ack func()) (client, error) {
	tok, err := d.token(group)
	if err != nil {
		return nil, err
	}
	ws, _, err := d.dialer.DialContext(ctx, d.url+"?"+url.Values{"token": {tok}}.Encode(), nil)
	if err != nil {
		return nil, fmt.Errorf("connect to teleop server: %w", err)
	}
	_ = ws.SetReadDeadline(time.Now().Add(dialWait))
	_, welcome, err := ws.ReadMessage()
	if err != nil {
		ws.Close()
		return nil, fmt.Errorf("read welcome: %w", err)
	}
	_ = ws.SetReadDeadline(time.Time{})
	id := string(field(welcome, `"connection":{"connectionId":"`))
	if id == "" {
		ws.Close()
		return nil, fmt.Errorf("no connection ID in welcome %.200s", welcome)
	}
	c := &relayClient{ws: ws, cid: id, done: make(chan struct{})}
	go c.readLoop(msg, ack)
	return c, nil
}

var (
	signalPrefix = []byte(`{"op":"signal"`)
	resultPrefix = []byte(`{"op":"result"`)
	errorPrefix  = []byte(`{"op":"error"`)
	resultOK     = []byte(`"code":200`)
)

type relayClient struct {
	ws    *websocket.Conn
	cid   string
	done  chan struct{} // closed when readLoop returns
	nacks atomic.Int64
	err   firstErr
	buf   []byte // owned by send
	n     int64  // owned by send: the next send id
}

func (c *relayClient) id() string { return c.cid }

func (c *relayClient) readLoop(msg func([]byte), ack func()) {
	defer close(c.done)
	buf := make([]byte, 0, 16<<10)
	for {
		_, r, err := c.ws.NextReader()
		if err != nil {
			return
		}
		if buf, err = readAll(buf[:0], r); err != nil {
			return
		}
		switch {
		case bytes.HasPrefix(buf, signalPrefix):
			if msg != nil {
				msg(field(buf, `"data":"`))
			}
		case bytes.HasPrefix(buf, resultPrefix):
			if !bytes.Contains(buf, resultOK) {
				c.err.set(fmt.Errorf("teleop server refused a signal: %.200s", buf))
			}
			c.nacks.Add(1)
			if ack != nil {
				ack()
			}
		case bytes.HasPrefix(buf, errorPrefix):
			c.err.set(fmt.Errorf("teleop server: %.200s", buf))
		}
	}
}

func (c *relayClient) send(to string, payload []byte) error {
	b := append(c.buf[:0], `{"op":"signal","id":"`...)
	b = strconv.AppendInt(b, c.n, 10)
	c.n++
	if to != "" {
		b = append(b, `","to":"`...)
		b = append(b, to...)
	}
	b = append(b, `","type":"b","data":"`...)
	b = append(b, payload...) // the workloads' payloads need no escaping
	b = append(b, `"}`...)
	c.buf = b
	return c.ws.WriteMessage(websocket.TextMessage, b)
}

func (c *relayClient) acks() (int64, bool) { return c.nacks.Load(), true }

func (c *relayClient) close() error {
	// A close frame makes the relay drop the connection at once instead
	// of holding it for a resume.
	_ = c.ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""),
		time.Now().Add(time.Second))
	c.ws.Close()
	<-c.done
	return c.err.get()
}

// readAll reads a message into buf.
func readAll(buf []byte, r io.Reader) ([]byte, error) {
	for {
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)]
		}
		n, err := r.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if err == io.EOF {
			return buf, nil
		}
		if err != nil {
			return buf, err
		}
	}
}

// field returns the bytes after marker up to the next quote.
func field(msg []byte, marker string) []byte {
	i := bytes.Index(msg, []byte(marker))
	if i < 0 {
		return nil
	}
	rest := msg[i+len(marker):]
	if j := bytes.IndexByte(rest, '"'); j >= 0 {
		return rest[:j]
	}
	return nil
}

func (d *relayDriver) dialIdle(ctx context.Context, group string) (net.Conn, error) {
	tok, err := d.token(group)
	if err != nil {
		return nil, err
	}
	c, err := dialTCP(ctx, d.s.addr)
	if err != nil {
		return nil, err
	}
	req := "GET /v1/connect?token=" + url.QueryEscape(tok) + " HTTP/1.1\r\nHost: " + d.s.addr +
		"\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n" +
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
	err = handshake(c, func(br *bufio.Reader) error {
		if _, err := io.WriteString(c, req); err != nil {
			return err
		}
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			return err
		}
		if resp.StatusCode != http.StatusSwitchingProtocols {
			return fmt.Errorf("upgrade: %s", resp.Status)
		}
		return relaybench.ReadWelcome(br)
	})
	return c, err
}

// dialTCP connects to a loopback address.
func dialTCP(ctx context.Context, addr string) (net.Conn, error) {
	if err := checkLoopback(addr); err != nil {
		return nil, err
	}
	d := net.Dialer{Timeout: dialWait}
	return d.DialContext(ctx, "tcp", addr)
}

// handshake runs fn with a deadline on c and closes c if it fails.
func handshake(c net.Conn, fn func(br *bufio.Reader) error) error {
	_ = c.SetDeadline(time.Now().Add(dialWait))
	err := fn(bufio.NewReaderSize(c, 1024))
	if err != nil {
		c.Close()
		return err
	}
	_ = c.SetDeadline(time.Time{})
	return nil
}

// ---- mosquitto: MQTT 3.1.1 with eclipse paho ----

type mqttDriver struct {
	s *server
	n atomic.Int64 // client IDs
}

func mqttTopic(group, to string) string {
	if to == "" {
		return "bench/" + group
	}
	return "bench/" + group + "/" + to
}

func (d *mqttDriver) connect(ctx context.Context, group string, msg func([]byte), _ func()) (client, error) {
	c := &mqttClient{cid: "c" + strconv.FormatInt(d.n.Add(1), 10), group: group}
	o := mqtt.NewClientOptions().
		AddBroker("tcp://" + d.s.addr).
		SetClientID(c.cid).
		SetCleanSession(true).
		SetAutoReconnect(false).
		SetConnectRetry(false).
		SetKeepAlive(0). // no pings, like the relay's long ping period here
		SetConnectTimeout(dialWait).
		SetWriteTimeout(dialWait).
		SetOrderMatters(true). // handlers run in order on paho's router goroutine
		SetConnectionLostHandler(func(_ mqtt.Client, err error) {
			c.err.set(fmt.Errorf("mosquitto connection lost: %w", err))
		}).
		SetCustomOpenConnectionFn(func(u *url.URL, _ mqtt.ClientOptions) (net.Conn, error) {
			nc, err := dialTCP(ctx, u.Host)
			if err != nil {
				return nil, err
			}
			return &bufConn{Conn: nc, r: bufio.NewReaderSize(nc, 32<<10)}, nil
		})
	c.cl = mqtt.NewClient(o)
	if err := wait(c.cl.Connect()); err != nil {
		return nil, fmt.Errorf("connect to mosquitto: %w", err)
	}
	if msg != nil {
		topics := map[string]byte{mqttTopic(group, ""): 0, mqttTopic(group, c.cid): 0}
		if err := wait(c.cl.SubscribeMultiple(topics, func(_ mqtt.Client, m mqtt.Message) { msg(m.Payload()) })); err != nil {
			c.cl.Disconnect(0)
			return nil, fmt.Errorf("subscribe: %w", err)
		}
	}
	return c, nil
}

func wait(t mqtt.Token) error {
	if !t.WaitTimeout(dialWait) {
		return fmt.Errorf("no answer within %v", dialWait)
	}
	return t.Error()
}

// bufConn reads through a buffer; paho reads from one goroutine only.
type bufConn struct {
	net.Conn
	r *bufio.Reader
}

func (c *bufConn) Read(p []byte) (int, error) { return c.r.Read(p) }

type mqttClient struct {
	cl    mqtt.Client
	cid   string
	group string
	err   firstErr
}

func (c *mqttClient) id() string { return c.cid }

func (c *mqttClient) send(to string, payload []byte) error {
	// paho writes the slice later, from its own goroutine: give it a copy.
	t := c.cl.Publish(mqttTopic(c.group, to), 0, false, bytes.Clone(payload))
	select {
	case <-t.Done():
		return t.Error()
	default:
		return nil
	}
}

func (c *mqttClient) acks() (int64, bool) { return 0, false }

func (c *mqttClient) close() error {
	c.cl.Disconnect(250)
	return c.err.get()
}

func (d *mqttDriver) dialIdle(ctx context.Context, group string) (net.Conn, error) {
	c, err := dialTCP(ctx, d.s.addr)
	if err != nil {
		return nil, err
	}
	id := "idle" + strconv.FormatInt(d.n.Add(1), 10)
	topic := mqttTopic(group, "")
	// CONNECT: protocol "MQTT" level 4, clean session, no keep-alive.
	p := []byte{0x10, byte(10 + 2 + len(id)), 0, 4, 'M', 'Q', 'T', 'T', 4, 0x02, 0, 0, 0, byte(len(id))}
	p = append(p, id...)
	// SUBSCRIBE packet 1 to topic at QoS 0.
	p = append(p, 0x82, byte(2+2+len(topic)+1), 0, 1, 0, byte(len(topic)))
	p = append(p, topic...)
	p = append(p, 0)
	err = handshake(c, func(br *bufio.Reader) error {
		if _, err := c.Write(p); err != nil {
			return err
		}
		var r [4 + 5]byte // CONNACK, SUBACK
		if _, err := io.ReadFull(br, r[:]); err != nil {
			return err
		}
		if r[0] != 0x20 || r[3] != 0 {
			return fmt.Errorf("connect refused: % x", r[:4])
		}
		if r[4] != 0x90 || r[8] != 0 {
			return fmt.Errorf("subscribe refused: % x", r[4:])
		}
		return nil
	})
	return c, err
}

// ---- nats-server: NATS core with nats.go ----

type natsDriver struct {
	s *server
	n atomic.Int64 // client IDs
}

func natsSubject(group, to string) string {
	if to == "" {
		return "bench." + group
	}
	return "bench." + group + "." + to
}

func (d *natsDriver) connect(ctx context.Context, group string, msg func([]byte), _ func()) (client, error) {
	if err := checkLoopback(d.s.addr); err != nil {
		return nil, err
	}
	c := &natsClient{cid: "c" + strconv.FormatInt(d.n.Add(1), 10), group: group}
	nc, err := nats.Connect("nats://"+d.s.addr,
		nats.Name(c.cid),
		nats.NoReconnect(),
		nats.Timeout(dialWait),
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
			c.err.set(fmt.Errorf("nats: %w", err))
		}),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err != nil {
				c.err.set(fmt.Errorf("nats connection lost: %w", err))
			}
		}))
	if err != nil {
		return nil, fmt.Errorf("connect to nats-server: %w", err)
	}
	c.nc = nc
	if msg != nil {
		cb := func(m *nats.Msg) { msg(m.Data) }
		for _, subj := range []string{natsSubject(group, ""), natsSubject(group, c.cid)} {
			if _, err := nc.Subscribe(subj, cb); err != nil {
				nc.Close()
				return nil, fmt.Errorf("subscribe %s: %w", subj, err)
			}
		}
		// The server has the subscriptions once it answers a PING.
		if err := nc.FlushTimeout(dialWait); err != nil {
			nc.Close()
			return nil, fmt.Errorf("subscribe: %w", err)
		}
	}
	return c, nil
}

type natsClient struct {
	nc    *nats.Conn
	cid   string
	group string
	err   firstErr
}

func (c *natsClient) id() string { return c.cid }

func (c *natsClient) send(to string, payload []byte) error {
	return c.nc.Publish(natsSubject(c.group, to), payload) // copied into its write buffer
}

func (c *natsClient) acks() (int64, bool) { return 0, false }

func (c *natsClient) close() error {
	c.nc.Close()
	return c.err.get()
}

func (d *natsDriver) dialIdle(ctx context.Context, group string) (net.Conn, error) {
	c, err := dialTCP(ctx, d.s.addr)
	if err != nil {
		return nil, err
	}
	err = handshake(c, func(br *bufio.Reader) error {
		line, err := br.ReadString('\n')
		if err != nil {
			return err
		}
		if !strings.HasPrefix(line, "INFO ") {
			return fmt.Errorf("first line is %.80q", line)
		}
		req := `CONNECT {"verbose":false,"pedantic":false,"protocol":1,"name":"idle"}` + "\r\n" +
			"SUB " + natsSubject(group, "") + " 1\r\nPING\r\n"
		if _, err := io.WriteString(c, req); err != nil {
			return err
		}
		for {
			line, err := br.ReadString('\n')
			if err != nil {
				return err
			}
			switch {
			case line == "PONG\r\n":
				return nil
			case strings.HasPrefix(line, "-ERR"):
				return fmt.Errorf("nats-server: %s", strings.TrimSpace(line))
			}
		}
	})
	return c, err
}
