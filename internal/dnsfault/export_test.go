package dnsfault

// For the external tests' upstream DNS server.
var (
	Question = question
	ReadTCP  = readTCP
	WriteTCP = writeTCP
	Query    = query
)

const (
	HeaderLen = headerLen
	FlagQR    = flagQR
	FlagRA    = flagRA

	RcodeNXDomain = rcodeNXDomain
)
