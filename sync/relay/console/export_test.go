package console

// SessionCount exposes how many sessions the store holds to the black-box tests.
func (s *Store) SessionCount() int { return s.sessionCount() }
