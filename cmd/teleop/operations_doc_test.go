package main

import (
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// pendingFlags are flags the operations guide documents that are wired by
// another change; remove an entry once its flag exists.
var pendingFlags = map[string]string{}

// TestOperationsCommands: every teleop command in docs/operations.md and
// docs/cluster.md (code blocks and inline code) and in the systemd units' ExecStart parses with
// the commands and flags this binary has.
func TestOperationsCommands(t *testing.T) {
	var cmds []docCommand
	for _, doc := range []string{"../../docs/operations.md", "../../docs/cluster.md"} {
		b, err := os.ReadFile(doc)
		if err != nil {
			t.Fatal(err)
		}
		cmds = append(cmds, markdownCommands(doc, string(b))...)
	}
	units, _ := filepath.Glob("../../configs/systemd/*.service")
	if len(units) == 0 {
		t.Fatal("no systemd units in configs/systemd")
	}
	for _, u := range units {
		b, err := os.ReadFile(u)
		if err != nil {
			t.Fatal(err)
		}
		cmds = append(cmds, unitCommands(u, string(b))...)
	}
	if len(cmds) < 10 {
		t.Fatalf("found only %d teleop commands", len(cmds))
	}
	for _, c := range cmds {
		root := newRootCmd(io.Discard, io.Discard)
		sub, rest, err := root.Find(c.args)
		if err != nil || sub == root {
			t.Errorf("%s: teleop %s: no such command (%v)", c.where, strings.Join(c.args, " "), err)
			continue
		}
		if err := sub.ParseFlags(rest); err != nil {
			flag, _ := strings.CutPrefix(err.Error(), "unknown flag: ")
			if why, ok := pendingFlags[sub.Name()+" "+flag]; ok {
				t.Logf("%s: pending: %v (%s)", c.where, err, why)
				continue
			}
			t.Errorf("%s: teleop %s: %v", c.where, strings.Join(c.args, " "), err)
			continue
		}
		if c.mention {
			continue
		}
		if sub.Args != nil {
			if err := sub.Args(sub, sub.Flags().Args()); err != nil {
				t.Errorf("%s: teleop %s: %v", c.where, strings.Join(c.args, " "), err)
			}
		}
		if err := sub.ValidateRequiredFlags(); err != nil {
			t.Errorf("%s: teleop %s: %v", c.where, strings.Join(c.args, " "), err)
		}
	}
	t.Logf("checked %d commands", len(cmds))
}

type docCommand struct {
	where string   // file:line
	args  []string // after "teleop"
	// mention: inline code that names a command and maybe some flags,
	// not a whole invocation: its arguments and required flags are not
	// checked.
	mention bool
}

var inlineCode = regexp.MustCompile("`(teleop [^`]+)`")

// markdownCommands finds teleop commands in fenced code blocks (lines that
// are not comments) and in inline code spans that start with "teleop ".
func markdownCommands(file, text string) []docCommand {
	var out []docCommand
	lines := strings.Split(text, "\n")
	inBlock := false
	for i := 0; i < len(lines); i++ {
		l := lines[i]
		where := file + ":" + strconv.Itoa(i+1)
		if strings.HasPrefix(strings.TrimSpace(l), "```") {
			inBlock = !inBlock
			continue
		}
		if inBlock {
			for strings.HasSuffix(l, "\\") && i+1 < len(lines) {
				i++
				l = strings.TrimSuffix(l, "\\") + " " + lines[i]
			}
			if strings.HasPrefix(strings.TrimSpace(l), "#") {
				continue
			}
			out = append(out, shellCommands(where, l)...)
			continue
		}
		for _, m := range inlineCode.FindAllStringSubmatch(l, -1) {
			for _, c := range shellCommands(where, m[1]) {
				c.mention = true
				out = append(out, c)
			}
		}
	}
	return out
}

// unitCommands finds the teleop commands of ExecStart= lines.
func unitCommands(file, text string) []docCommand {
	var out []docCommand
	lines := strings.Split(text, "\n")
	for i := 0; i < len(lines); i++ {
		l := lines[i]
		start := i
		for strings.HasSuffix(l, "\\") && i+1 < len(lines) {
			i++
			l = strings.TrimSuffix(l, "\\") + " " + lines[i]
		}
		if v, ok := strings.CutPrefix(l, "ExecStart="); ok {
			out = append(out, shellCommands(file+":"+strconv.Itoa(start+1), v)...)
		}
	}
	return out
}

// shellCommands splits a shell line into the commands it runs ($(…), |, ;,
// &&) and returns those that run teleop, without sudo, environment
// assignments and trailing comments.
func shellCommands(where, line string) []docCommand {
	var out []docCommand
	for {
		i := strings.Index(line, "$(")
		if i < 0 {
			break
		}
		j := strings.Index(line[i:], ")")
		if j < 0 {
			break
		}
		out = append(out, shellCommands(where, line[i+2:i+j])...)
		line = line[:i] + "X" + line[i+j+1:]
	}
	for _, seg := range splitOutsideQuotes(line) {
		words := shellWords(seg)
		for len(words) > 0 && (strings.Contains(words[0], "=") && !strings.HasPrefix(words[0], "-")) {
			words = words[1:] // NAME=value
		}
		if len(words) > 0 && words[0] == "sudo" {
			words = words[1:]
			if len(words) > 1 && words[0] == "-u" {
				words = words[2:]
			}
		}
		if len(words) == 0 || (words[0] != "teleop" && !strings.HasSuffix(words[0], "/teleop")) {
			continue
		}
		args := words[1:]
		for k, w := range args {
			if strings.HasPrefix(w, "#") {
				args = args[:k]
				break
			}
		}
		out = append(out, docCommand{where: where, args: args})
	}
	return out
}

func splitOutsideQuotes(s string) []string {
	var out []string
	var quote byte
	start := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case quote != 0:
			if c == quote {
				quote = 0
			}
		case c == '\'' || c == '"':
			quote = c
		case c == '|' || c == ';':
			out = append(out, s[start:i])
			start = i + 1
		case c == '&' && i+1 < len(s) && s[i+1] == '&':
			out = append(out, s[start:i])
			start = i + 2
			i++
		}
	}
	return append(out, s[start:])
}

// shellWords splits on blanks, honouring single and double quotes.
func shellWords(s string) []string {
	var out []string
	var cur strings.Builder
	var quote byte
	inWord := false
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case quote != 0:
			if c == quote {
				quote = 0
			} else {
				cur.WriteByte(c)
			}
		case c == '\'' || c == '"':
			quote, inWord = c, true
		case c == ' ' || c == '\t':
			if inWord {
				out = append(out, cur.String())
				cur.Reset()
				inWord = false
			}
		default:
			cur.WriteByte(c)
			inWord = true
		}
	}
	if inWord {
		out = append(out, cur.String())
	}
	return out
}
