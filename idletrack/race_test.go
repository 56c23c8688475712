//go:build race

package idletrack

const raceEnabled = true
