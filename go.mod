module github.com/moatmail/moat

go 1.26.8
