package token_test

import (
	"errors"
	"fmt"
	"time"

	"github.com/teleop/teleop/signaling/token"
)

func ExampleNew() {
	now := time.Date(2026, 5, 1, 10, 0, 0, 0, time.UTC)
	tok, err := token.New("123456", "secret", "robot-1", &token.Options{
		Role:           token.Moderator,
		ConnectionData: "name=alice",
		TTL:            time.Hour,
		Now:            now,
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	c, err := token.Verify(tok, "123456", "secret", now.Add(time.Minute))
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(c.SessionID, c.Role, c.ConnectionData, c.ExpireTime, c.Format)
	fmt.Println(c.Role.CanSignal(), c.Role.CanForceDisconnect())
	// Output:
	// robot-1 moderator name=alice 2026-05-01 11:00:00 +0000 UTC jwt
	// true true
}

func ExampleVerify() {
	now := time.Date(2026, 5, 1, 10, 0, 0, 0, time.UTC)
	tok, _ := token.New("123456", "secret", "robot-1", &token.Options{Now: now, TTL: time.Hour, Legacy: true})

	_, err := token.Verify(tok, "123456", "secret", now.Add(2*time.Hour))
	fmt.Println(errors.Is(err, token.ErrExpired), err)
	_, err = token.Verify(tok, "654321", "secret", now)
	fmt.Println(errors.Is(err, token.ErrWrongKey), err)
	// Output:
	// true token expired at 2026-05-01T11:00:00Z (server time 2026-05-01T12:00:00Z)
	// true token signed for api key "123456", server has "654321"
}

func ExampleNewSessionID() {
	id, _ := token.NewSessionID("123456", "", time.Now(), nil)
	key, _ := token.ParseSessionID(id)
	fmt.Println(id[:2], key)
	// Output: 1_ 123456
}
