package email

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/url"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// Context is what a template sees besides the contact's fields: the run that sends it, the
// contact's tags, scores, cart, last order and custom object records, and recommendations.
// Every part has a zero value that renders as nothing, so a template written for a contact
// with a cart renders (listing nothing) for one without.
type Context struct {
	// Trigger is the event that started the run; Event the latest event the run heard.
	Trigger Event
	Event   Event
	Tags    []string
	// Scores are the contact's named scores ("" is the default score, also .Score).
	Scores map[string]float64
	// Cart is the cart the contact has not checked out: the open one, else the last
	// abandoned one (for a run started by a cart event, the one it names by cart_id).
	Cart Cart
	// Order is the contact's last order.
	Order Order
	// Objects are the contact's custom object records by type: .Objects.subscription.
	Objects map[string][]Record
	// Timezone is the contact's IANA time zone (its timezone field, else the journey's):
	// date shows times in it. "" is UTC.
	Timezone string
	// Recommend returns up to n products for the contact; templates call it as recommend n.
	// Nil recommends nothing (a template checked when saved).
	Recommend func(n int) ([]Product, error) `json:"-"`
}

// Event is an event as a template sees it.
type Event struct {
	Name       string
	Properties map[string]any
	At         time.Time
}

// Cart is a cart with its lines.
type Cart struct {
	ID       int64
	Status   string // open or abandoned
	Value    float64
	Currency string
	// Properties are the cart events' properties, merged (cart_id, url, …).
	Properties map[string]any
	Lines      []Line
	UpdatedAt  time.Time
}

// Order is an order with its lines.
type Order struct {
	ID         int64
	OrderID    string
	Total      float64
	Currency   string
	Properties map[string]any
	Lines      []Line
	At         time.Time
}

// Line is a product in a cart or an order.
type Line struct {
	ProductID string
	SKU       string
	Name      string
	Price     float64
	Quantity  float64
	URL       string
	ImageURL  string
}

// Product is the line's product id, else its SKU: what identifies it.
func (l Line) Product() string {
	if l.ProductID != "" {
		return l.ProductID
	}
	return l.SKU
}

// Total is price times quantity (a quantity of 0 counts as 1).
func (l Line) Total() float64 {
	if l.Quantity == 0 {
		return l.Price
	}
	return l.Price * l.Quantity
}

// Product is a recommended product. Reason says where it came from: bought_together (bought
// in the same orders as what the contact has in its cart, bought or viewed), viewed (viewed
// and not bought) or popular (the most ordered lately).
type Product struct {
	ProductID string
	SKU       string
	Name      string
	Price     float64
	Currency  string
	URL       string
	ImageURL  string
	Reason    string
}

// ID is the product's id, else its SKU.
func (p Product) ID() string {
	if p.ProductID != "" {
		return p.ProductID
	}
	return p.SKU
}

// Record is a custom object record (a subscription, an enrolment, a vehicle).
type Record struct {
	ID        string
	Fields    map[string]any
	CreatedAt time.Time
	UpdatedAt time.Time
}

// contextFuncs are the template helpers over the context: money, date, default, url and
// recommend.
func contextFuncs(d *Data) map[string]any {
	var recommended map[int][]Product
	return map[string]any{
		// money formats an amount in a currency: money 12.5 "EUR" is €12.50; no amount
		// (a property the event lacks) shows nothing, no currency the amount alone.
		"money": func(amount, currency any) (string, error) {
			if amount == nil || amount == "" {
				return "", nil
			}
			code := ""
			switch c := currency.(type) {
			case nil:
			case string:
				code = c
			default:
				return "", fmt.Errorf("money: currency %v is not a currency code", currency)
			}
			v, ok := number(amount)
			if !ok {
				return "", fmt.Errorf("money: %v is not an amount", amount)
			}
			return formatMoney(v, code), nil
		},
		// date shows a time in the contact's time zone (a date alone as it is), by a Go
		// layout: date .Cart.UpdatedAt "Mon 2 Jan 15:04" (default "2 January 2006").
		"date": func(v any, layout ...string) (string, error) {
			return formatDate(v, d.zone(), layout)
		},
		// default is the value, or the fallback when the value is empty: {{.Fields.plan | default "free"}}.
		"default": func(fallback, v any) any {
			if empty(v) {
				return fallback
			}
			return v
		},
		// url builds a link: an http(s) base and query parameters, each value escaped; an
		// empty value leaves its parameter out. url "https://shop.example/cart" "id" .Cart.ID
		"url": func(base string, pairs ...any) (string, error) {
			return buildURL(base, pairs)
		},
		// recommend returns up to n products for the contact: range recommend 3.
		"recommend": func(n int) ([]Product, error) {
			if d == nil || d.Recommend == nil || n <= 0 {
				return nil, nil
			}
			if p, ok := recommended[n]; ok {
				return p, nil
			}
			if n > MaxRecommendations {
				return nil, fmt.Errorf("recommend: at most %d products", MaxRecommendations)
			}
			p, err := d.Recommend(n)
			if err != nil {
				return nil, fmt.Errorf("recommend: %w", err)
			}
			if recommended == nil {
				recommended = map[int][]Product{}
			}
			recommended[n] = p
			return p, nil
		},
	}
}

// MaxRecommendations bounds recommend n.
const MaxRecommendations = 50

// zone is the contact's time zone, UTC when unknown.
func (d *Data) zone() *time.Location {
	if d == nil || d.Timezone == "" {
		return time.UTC
	}
	if loc, err := time.LoadLocation(d.Timezone); err == nil {
		return loc
	}
	return time.UTC
}

// number reads an amount: a number of any Go type, or a numeric string.
func number(v any) (float64, bool) {
	switch x := v.(type) {
	case float64:
		return x, true
	case float32:
		return float64(x), true
	case int:
		return float64(x), true
	case int64:
		return float64(x), true
	case json.Number:
		f, err := x.Float64()
		return f, err == nil
	case string:
		f, err := strconv.ParseFloat(strings.TrimSpace(x), 64)
		return f, err == nil && !math.IsNaN(f) && !math.IsInf(f, 0)
	}
	rv := reflect.ValueOf(v)
	switch rv.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return float64(rv.Int()), true
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return float64(rv.Uint()), true
	}
	return 0, false
}

// currencies are the symbols money writes before the amount, and how many decimals it shows.
var currencies = map[string]struct {
	symbol   string
	decimals int
}{
	"EUR": {"€", 2}, "USD": {"$", 2}, "GBP": {"£", 2}, "JPY": {"¥", 0}, "CNY": {"¥", 2}, "INR": {"₹", 2},
	"BRL": {"R$", 2}, "CAD": {"CA$", 2}, "AUD": {"A$", 2}, "KRW": {"₩", 0}, "CHF": {"CHF ", 2},
}

// formatMoney writes an amount with its currency's symbol (or its code after the amount),
// thousands separated by commas: €1,234.50, ¥1,200, 12.00 SEK.
func formatMoney(v float64, currency string) string {
	code := strings.ToUpper(strings.TrimSpace(currency))
	c, known := currencies[code]
	if !known {
		c.decimals = 2
	}
	sign := ""
	if v < 0 {
		sign, v = "-", -v
	}
	s := strconv.FormatFloat(v, 'f', c.decimals, 64)
	whole, frac, _ := strings.Cut(s, ".")
	var b strings.Builder
	for i, r := range whole {
		if i > 0 && (len(whole)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(r)
	}
	if frac != "" {
		b.WriteString("." + frac)
	}
	switch {
	case known:
		return sign + c.symbol + b.String()
	case code == "":
		return sign + b.String()
	}
	return sign + b.String() + " " + code
}

// formatDate shows a time in loc, or a date (2026-12-24) as it is; nil or "" show nothing.
func formatDate(v any, loc *time.Location, layout []string) (string, error) {
	l := "2 January 2006"
	if len(layout) > 0 && layout[0] != "" {
		l = layout[0]
	}
	switch x := v.(type) {
	case nil:
		return "", nil
	case time.Time:
		if x.IsZero() {
			return "", nil
		}
		return x.In(loc).Format(l), nil
	case *time.Time:
		if x == nil || x.IsZero() {
			return "", nil
		}
		return x.In(loc).Format(l), nil
	case string:
		s := strings.TrimSpace(x)
		if s == "" {
			return "", nil
		}
		if t, err := time.Parse("2006-01-02", s); err == nil {
			return t.Format(l), nil // a date is the same day everywhere
		}
		if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
			return t.In(loc).Format(l), nil
		}
		return "", fmt.Errorf("date: %q is not a date (2026-12-24) or a time (RFC 3339)", s)
	}
	if f, ok := number(v); ok {
		return time.Unix(int64(f), 0).In(loc).Format(l), nil // a Unix time in seconds
	}
	return "", fmt.Errorf("date: %v is not a time", v)
}

// empty says whether default replaces v: nil, "", an empty list or map, false.
func empty(v any) bool {
	if v == nil {
		return true
	}
	rv := reflect.ValueOf(v)
	switch rv.Kind() {
	case reflect.String, reflect.Slice, reflect.Map, reflect.Array:
		return rv.Len() == 0
	case reflect.Bool:
		return !rv.Bool()
	case reflect.Pointer, reflect.Interface:
		return rv.IsNil()
	}
	return false
}

// buildURL adds query parameters to an http(s) base, escaping each value.
func buildURL(base string, pairs []any) (string, error) {
	u, err := url.Parse(strings.TrimSpace(base))
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return "", fmt.Errorf("url: %q is not an http(s) URL", base)
	}
	if len(pairs)%2 != 0 {
		return "", errors.New("url: parameters come in pairs: name, value")
	}
	q := u.Query()
	for i := 0; i < len(pairs); i += 2 {
		name, ok := pairs[i].(string)
		if !ok || name == "" {
			return "", fmt.Errorf("url: parameter %d's name must be text", i/2+1)
		}
		if empty(pairs[i+1]) {
			continue
		}
		q.Set(name, fmt.Sprint(pairs[i+1]))
	}
	u.RawQuery = q.Encode()
	return u.String(), nil
}

// TemplateError is a template that does not parse or does not render: the part (subject,
// html, text), the line in it and what is wrong.
type TemplateError struct {
	Part    string
	Line    int
	Message string
}

func (e *TemplateError) Error() string {
	if e.Line > 0 {
		return fmt.Sprintf("%s: %s: line %d: %s", ErrTemplate, e.Part, e.Line, e.Message)
	}
	return fmt.Sprintf("%s: %s: %s", ErrTemplate, e.Part, e.Message)
}

// Unwrap makes every TemplateError an ErrTemplate.
func (e *TemplateError) Unwrap() error { return ErrTemplate }

// goTemplateError reads Go's template errors: "template: html:3:14: executing "html" at
// <.Nope>: can't evaluate field Nope", "template: subject:1: unexpected EOF",
// "html/template:html:2:9: … ambiguous context …".
var goTemplateError = regexp.MustCompile(`^(?:html/)?template: ?[\w]+:(\d+)(?::\d+)?: (?:executing "[^"]*" at )?(.*)$`)

// templateError turns a parse or render error of a part into a *TemplateError with its line.
func templateError(part string, err error) error {
	msg := err.Error()
	var te *TemplateError
	if errors.As(err, &te) {
		return err
	}
	if m := goTemplateError.FindStringSubmatch(msg); m != nil {
		line, _ := strconv.Atoi(m[1])
		return &TemplateError{Part: part, Line: line, Message: m[2]}
	}
	return &TemplateError{Part: part, Message: msg}
}
