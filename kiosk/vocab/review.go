package vocab

import "slices"

// Reasons a reviewer may reject a letter with. The staff console offers exactly these, the
// terminal translates each for the inmate ("reject.<code>" in assets/translations), and a
// reviewer's note may follow after ": ". Modelled on what facilities' mail rules name: content
// in general, threats, criminal activity, messages for third parties, codes a reviewer cannot
// read, and sexually explicit content.
const (
	ReviewContentPolicy    = "content_policy"
	ReviewThreat           = "threat"
	ReviewCriminal         = "criminal_activity"
	ReviewThirdParty       = "third_party"
	ReviewCodedLanguage    = "coded_language"
	ReviewSexuallyExplicit = "sexually_explicit"
)

// ReviewReasons lists the reviewer's reasons in the order a console offers them (a new slice
// each call: the list is not for changing).
func ReviewReasons() []string {
	return []string{ReviewContentPolicy, ReviewThreat, ReviewCriminal, ReviewThirdParty, ReviewCodedLanguage, ReviewSexuallyExplicit}
}

// IsReviewReason reports whether code is one of ReviewReasons.
func IsReviewReason(code string) bool { return slices.Contains(ReviewReasons(), code) }
