package bayes

import (
	"context"
	"math"
	"math/rand/v2"
)

// The logistic model is the second opinion of a model: a weight per
// feature, learned by online logistic regression over the same binary
// features the counts describe (Goodman and Yih, "Online Discriminative
// Spam Filter Training", CEAS 2006; Sculley and Wachman, "Relaxed Online
// SVMs for Spam Filtering", SIGIR 2007). Where the counts treat features
// as independent, so that a newsletter's hundred commercial words each
// testify, the weights are learned jointly: a feature that only repeats
// what the others say gets little. The store keeps the weights beside the
// counts (Counts.Weight); learning sends each message's correction
// (Event.Step) and the store adds it to the weight of each of its
// features.

// logisticSeed fixes the order in which a batch is learned, so that
// training the same batch twice gives the same model.
const logisticSeed = 0x6d6f6174

func sigmoid(z float64) float64 { return 1 / (1 + math.Exp(-z)) }

// logisticSteps computes the logistic model's corrections (Event.Step)
// for events of one model: online logistic regression over the
// messages' binary features, trained on or near error (Sculley's TONE):
// a message the weights already place within Config.LogisticMargin of its
// class teaches nothing; any other moves the weight of each of its n
// features by LogisticRate·(y − p)/√n. A batch is learned in
// Config.LogisticEpochs passes, each in a fixed shuffled order, from the
// model's current weights; a single message is learned by the same rule
// (so it is repeated until the message scores right, at most
// LogisticEpochs times). Every step moves all of a message's features by
// the same amount, so a message's steps add up to its one Step.
func (c *Classifier) logisticSteps(ctx context.Context, user string, events []*Event) error {
	// Features are numbered once, so that the passes index slices instead
	// of probing maps.
	slot := make(map[uint64]int32)
	var feats []uint64
	ids := make([][]int32, len(events))
	var order []int
	for j, ev := range events {
		ev.Step = 0
		if ev.Class == Forget || len(ev.Features) == 0 {
			continue
		}
		s := make([]int32, 0, len(ev.Features))
		for _, f := range ev.Features {
			if _, lang := langHashSet[f]; lang {
				// Not weighed (ClassifyFeatures): in nearly every
				// message, it would learn as an intercept and shift
				// every other weight.
				continue
			}
			n, ok := slot[f]
			if !ok {
				n = int32(len(feats))
				slot[f] = n
				feats = append(feats, f)
			}
			s = append(s, n)
		}
		ids[j] = s
		order = append(order, j)
	}
	if len(order) == 0 {
		return nil
	}
	counts := make([]Counts, len(feats))
	if err := c.store.Lookup(ctx, user, feats, counts); err != nil {
		return err
	}
	w := make([]float64, len(feats))
	for i, k := range counts {
		w[i] = float64(k.Weight)
	}
	rnd := rand.New(rand.NewPCG(logisticSeed, uint64(len(order))))
	for range c.cfg.LogisticEpochs {
		rnd.Shuffle(len(order), func(a, b int) { order[a], order[b] = order[b], order[a] })
		for _, j := range order {
			s := ids[j]
			var z float64
			for _, n := range s {
				z += w[n]
			}
			y := 0.0
			if events[j].Class == Spam {
				y = 1
			}
			e := y - sigmoid(z)
			if math.Abs(e) < c.cfg.LogisticMargin {
				continue
			}
			g := c.cfg.LogisticRate * e / math.Sqrt(float64(len(s)))
			for _, n := range s {
				w[n] += g
			}
			events[j].Step += g
		}
	}
	return nil
}

// withSteps fills the logistic steps of events, model by model.
func (c *Classifier) withSteps(ctx context.Context, events []Event) error {
	byUser := make(map[string][]*Event)
	var users []string
	for i := range events {
		u := events[i].User
		if _, ok := byUser[u]; !ok {
			users = append(users, u)
		}
		byUser[u] = append(byUser[u], &events[i])
	}
	for _, u := range users {
		if err := c.logisticSteps(ctx, u, byUser[u]); err != nil {
			return err
		}
	}
	return nil
}
