package bayes

import (
	"context"
	"math"
	"testing"
)

func TestAssignFolds(t *testing.T) {
	a := AssignFolds(103, 10, 1)
	b := AssignFolds(103, 10, 1)
	per := make([]int, 10)
	for i := range a {
		if a[i] != b[i] {
			t.Fatal("assignment is not deterministic")
		}
		per[a[i]]++
	}
	for f, n := range per {
		if n < 10 || n > 11 {
			t.Errorf("fold %d holds %d of 103", f, n)
		}
	}
	if c := AssignFolds(103, 10, 2); equalInts(a, c) {
		t.Error("another seed gives the same assignment")
	}
}

func equalInts(a, b []int) bool {
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return len(a) == len(b)
}

func TestMeasure(t *testing.T) {
	sc := func(spam bool, ps ...float64) []Scored {
		var out []Scored
		for _, p := range ps {
			out = append(out, Scored{Spam: spam, Probability: p})
		}
		return out
	}
	for _, tc := range []struct {
		name               string
		scores             []Scored
		threshold          float64
		recall, fp, auc    float64
		atFP3              float64 // recall at FP <= 0.3 %
		tp, fn, fpN, tnN   int
		accuracy           float64
		opThresholdAtLeast float64
	}{
		{
			name:      "separated",
			scores:    append(sc(true, 0.9, 0.99, 1), sc(false, 0, 0.1, 0.2)...),
			threshold: 0.8, recall: 1, fp: 0, auc: 1, atFP3: 1,
			tp: 3, fn: 0, fpN: 0, tnN: 3, accuracy: 1, opThresholdAtLeast: 0.2,
		},
		{
			name:      "one ham above every spam",
			scores:    append(sc(true, 0.85, 0.9), sc(false, 0.95, 0.1, 0.1, 0.1)...),
			threshold: 0.8, recall: 1, fp: 0.25, auc: 0.75, atFP3: 0,
			tp: 2, fn: 0, fpN: 1, tnN: 3, accuracy: 5.0 / 6, opThresholdAtLeast: 0.95,
		},
		{
			name:      "ties count half",
			scores:    append(sc(true, 0.5), sc(false, 0.5)...),
			threshold: 0.8, recall: 0, fp: 0, auc: 0.5, atFP3: 0,
			tp: 0, fn: 1, fpN: 0, tnN: 1, accuracy: 0.5, opThresholdAtLeast: 0.5,
		},
	} {
		m := Measure(tc.scores, tc.threshold)
		near := func(a, b float64) bool { return math.Abs(a-b) < 1e-9 }
		if m.TP != tc.tp || m.FN != tc.fn || m.FP != tc.fpN || m.TN != tc.tnN {
			t.Errorf("%s: TP %d FN %d FP %d TN %d", tc.name, m.TP, m.FN, m.FP, m.TN)
		}
		if !near(m.Recall, tc.recall) || !near(m.FPRate, tc.fp) || !near(m.AUC, tc.auc) || !near(m.Accuracy, tc.accuracy) {
			t.Errorf("%s: recall %v fp %v auc %v accuracy %v", tc.name, m.Recall, m.FPRate, m.AUC, m.Accuracy)
		}
		op := m.RecallAtFP[0]
		if op.MaxFPRate != 0.003 || !near(op.Recall, tc.atFP3) || op.FPRate > 0.003 || op.Threshold <= tc.opThresholdAtLeast {
			t.Errorf("%s: operating point %+v, want recall %v", tc.name, op, tc.atFP3)
		}
	}
}

func TestCrossValidateSynthetic(t *testing.T) {
	spam, ham := synthCorpus(21, 330, 330, 800)
	cfg := DefaultConfig()
	folds := 0
	rep, err := CrossValidate(context.Background(), cfg, spam, ham, EvalOptions{
		Folds: 3, Seed: 1, Workers: 2, TempDir: t.TempDir(),
		Progress: func(int, Metrics) { folds++ },
	})
	if err != nil {
		t.Fatal(err)
	}
	if folds != 3 || len(rep.Scores) != 660 {
		t.Fatalf("%d folds reported, %d scores; want 3, 660", folds, len(rep.Scores))
	}
	m := Measure(rep.Scores, 0.8)
	if m.Recall < 0.99 || m.FP != 0 || m.AUC < 0.999 {
		t.Errorf("synthetic corpus: %+v", m)
	}
	if rep.ClassifyPerSec <= 0 || rep.TrainPerSec <= 0 {
		t.Errorf("rates %v %v", rep.ClassifyPerSec, rep.TrainPerSec)
	}
	// Only some folds, on the same split.
	rep2, err := CrossValidate(context.Background(), cfg, spam, ham, EvalOptions{Folds: 3, Seed: 1, OnlyFolds: []int{1}, TempDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep2.Scores) != 220 || !equalInts(rep.Assign, rep2.Assign) {
		t.Errorf("one fold: %d scores (want 220), same split %v", len(rep2.Scores), equalInts(rep.Assign, rep2.Assign))
	}
	if _, err := CrossValidate(context.Background(), cfg, spam, ham, EvalOptions{Folds: 1}); err == nil {
		t.Error("1 fold: want an error")
	}
}
