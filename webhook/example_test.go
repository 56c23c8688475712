package webhook_test

import (
	"fmt"
	"time"

	"github.com/idlegate/idlegate/webhook"
)

// A receiver checks a delivery with the zone's secret and the three
// webhook-* headers.
func ExampleVerify() {
	key, err := webhook.ParseSecret("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
	if err != nil {
		panic(err)
	}
	body := []byte(`{"type":"session.ended"}`)
	ts := time.Unix(1795253400, 0)
	sig := webhook.Sign(key, "msg_01KAJ3Y0G0ZZZZZZZZZZZZZZZZ", ts, body)

	fmt.Println(sig)
	fmt.Println(webhook.Verify(key, "msg_01KAJ3Y0G0ZZZZZZZZZZZZZZZZ", "1795253400", sig, body))
	fmt.Println(webhook.Verify(key, "msg_01KAJ3Y0G0ZZZZZZZZZZZZZZZZ", "1795253401", sig, body))
	// Output:
	// v1,DD2+ZbPnJaNay47YCLEMLM8Q8J3M691DhGsS3rJ65N4=
	// <nil>
	// no matching webhook signature
}
