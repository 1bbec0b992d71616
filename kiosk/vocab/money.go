package vocab

import "fmt"

// Cents is money: integer cents, never floats.
type Cents int64

// String formats as dollars for screens and logs, e.g. "$12.05" or "-$0.05".
func (c Cents) String() string {
	sign := ""
	v := int64(c)
	if v < 0 {
		sign = "-"
		v = -v
	}
	return fmt.Sprintf("%s$%d.%02d", sign, v/100, v%100)
}
