package warning

import "bytes"

// scanner finds where the tag goes in the first bytes of an HTML page:
// right before the first </head>, or, when the page omits that end tag,
// before <body>. It is a tokenizer in miniature: it skips comments and the
// contents of raw-text elements (<script>, <style>, <textarea>, ...), so that
// "</head>" inside a script string or a comment is not mistaken for the end
// of the head, and the tag never lands inside another script. It works
// incrementally: bytes are appended to the buffer between calls, and a tag
// split across writes ("</he" + "ad>") is found once its end arrives.
type scanner struct {
	pos      int    // next offset of the buffer to examine
	comment  bool   // inside <!-- ... -->
	raw      string // inside this raw-text element, until its end tag
	lastBody int    // offset of the last </body> seen outside raw text, or -1
}

func newScanner() scanner { return scanner{lastBody: -1} }

// rawText lists the elements whose contents the HTML tokenizer does not
// parse as markup (with scripting enabled, as in a browser).
var rawText = []string{"script", "style", "textarea", "title", "xmp", "iframe", "noembed", "noframes", "noscript"}

// find examines b from where the previous call stopped and returns the
// offset of the insertion point, or -1 if b does not contain it yet. With
// final set, no more bytes follow b, so a partial tag at its end is text.
func (s *scanner) find(b []byte, final bool) int {
	for s.pos < len(b) {
		if s.comment {
			j := bytes.Index(b[s.pos:], []byte("-->"))
			if j < 0 {
				s.pos = max(s.pos, len(b)-2)
				return -1
			}
			s.pos += j + 3
			s.comment = false
			continue
		}
		j := bytes.IndexByte(b[s.pos:], '<')
		if j < 0 {
			s.pos = len(b)
			return -1
		}
		k := s.pos + j
		rest := b[k:]
		if s.raw != "" {
			switch tagAt(rest, "</"+s.raw, final) {
			case more:
				s.pos = k
				return -1
			case yes:
				s.raw = ""
			}
			s.pos = k + 1
			continue
		}
		if r := tagAt(rest, "<!--", final); r == more {
			s.pos = k
			return -1
		} else if r == yes {
			s.comment = true
			s.pos = k + 4
			continue
		}
		for _, name := range []string{"</head", "<body"} {
			switch tagAt(rest, name, final) {
			case more:
				s.pos = k
				return -1
			case yes:
				s.pos = k
				return k
			}
		}
		switch tagAt(rest, "</body", final) {
		case more:
			s.pos = k
			return -1
		case yes:
			s.lastBody = k
		}
		for _, name := range rawText {
			switch tagAt(rest, "<"+name, final) {
			case more:
				s.pos = k
				return -1
			case yes:
				s.raw = name
			}
		}
		s.pos = k + 1
	}
	return -1
}

type match int

const (
	no   match = iota
	yes        // b starts with the tag
	more       // b may start with the tag; the next bytes decide
)

// tagAt reports whether b starts with the tag opener (such as "</head"),
// case-insensitively, followed by white space, '/' or '>'. The comment
// opener "<!--" needs no delimiter.
func tagAt(b []byte, opener string, final bool) match {
	n := len(opener)
	if opener == "<!--" {
		n--
	}
	if len(b) <= n {
		if final || !bytes.EqualFold(b, []byte(opener[:min(len(b), len(opener))])) {
			return no
		}
		return more
	}
	if !bytes.EqualFold(b[:len(opener)], []byte(opener)) {
		return no
	}
	if opener == "<!--" {
		return yes
	}
	switch b[n] {
	case ' ', '\t', '\n', '\f', '\r', '/', '>':
		return yes
	}
	return no
}
