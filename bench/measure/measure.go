package measure

import (
	"fmt"
	"net/http"
	"sort"
	"time"
)

// Percentile is the q-th percentile of d (0 for none).
func Percentile(d []time.Duration, q int) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := append([]time.Duration(nil), d...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[min(len(s)-1, len(s)*q/100)]
}

// MS prints a duration in milliseconds with one decimal.
func MS(d time.Duration) string { return fmt.Sprintf("%.1f ms", float64(d.Microseconds())/1000) }

// WaitHTTP waits up to 20 s for url to answer at all.
func WaitHTTP(url string) error {
	for range 400 {
		if resp, err := http.Get(url); err == nil {
			resp.Body.Close()
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("%s did not answer", url)
}
