package bayes

// trainPlan is what a batch of training events does to a store, worked
// out from what the store held before: the learned records to write, the
// features' deltas and the models' totals. Every store applies it with
// the same rules (counts never below zero; a row a forgetting brings to
// zero goes), and so does the mirror.
type trainPlan struct {
	ids     map[string]int64     // user → model id (-1: none, for a Forget)
	state   map[learnedKey]Class // the learned records after (Forget: none)
	before  map[learnedKey]Class // the learned records the plan read
	deltas  map[tokenKey]tokenDelta
	totals  map[int64]Totals
	changed int  // events that changed a model
	stepped bool // some event moved logistic weights
}

// planTrain works out the plan of events. modelID returns a user's model
// id, making the model when create is set (-1: none); learned returns the
// class a model holds a message as (Forget: none). Each is asked once per
// user and per message.
func planTrain(events []Event, modelID func(user string, create bool) (int64, error),
	learned func(learnedKey) (Class, error)) (*trainPlan, error) {
	p := &trainPlan{before: make(map[learnedKey]Class)}
	ids := make(map[string]int64)
	state := make(map[learnedKey]Class) // Forget means "not learned"
	deltas := make(map[tokenKey]tokenDelta)
	totals := make(map[int64]Totals)
	changed, stepped := 0, false
	var err error
	for _, ev := range events {
		id, ok := ids[ev.User]
		if !ok || id < 0 && ev.Class != Forget {
			// A model that did not exist for a Forget is made for a
			// later event of the batch that learns.
			if id, err = modelID(ev.User, ev.Class != Forget); err != nil {
				return nil, err
			}
			ids[ev.User] = id
		}
		if id < 0 {
			continue // forgetting in a model that does not exist
		}
		if ev.Step != 0 {
			stepped = true
			for _, f := range ev.Features {
				tk := tokenKey{id, f}
				d := deltas[tk]
				d.weight += ev.Step
				deltas[tk] = d
			}
		}
		k := learnedKey{id, ev.Digest}
		prev, ok := state[k]
		if !ok {
			if prev, err = learned(k); err != nil {
				return nil, err
			}
			p.before[k] = prev
		}
		if prev == ev.Class {
			state[k] = prev
			continue
		}
		changed++
		state[k] = ev.Class
		var ds, dh int32
		switch prev {
		case Spam:
			ds--
		case Ham:
			dh--
		}
		switch ev.Class {
		case Spam:
			ds++
		case Ham:
			dh++
		}
		t := totals[id]
		t.Spam += int64(ds)
		t.Ham += int64(dh)
		switch {
		case prev == Forget:
			t.Logistic++
		case ev.Class == Forget:
			t.Logistic--
		}
		totals[id] = t
		seen := ev.Time.Unix()
		for _, f := range ev.Features {
			tk := tokenKey{id, f}
			d := deltas[tk]
			d.spam += ds
			d.ham += dh
			if ev.Class != Forget && seen > d.seen {
				d.seen = seen
			}
			deltas[tk] = d
		}
	}
	p.ids, p.state, p.deltas, p.totals, p.changed, p.stepped = ids, state, deltas, totals, changed, stepped
	return p, nil
}
