#!/bin/bash
# measurements for issue 14 on the default run's samples/images (read-only under /tmp/defrun)
export PYTHONPATH=/work/wt-mass/src TF_CPP_MIN_LOG_LEVEL=2
PY="nice /work/main/.venv/bin/python -m jetimage"
D=/tmp/defrun/results/jets
R=/tmp/mass_wt/run
IM="$D/images/wjets.h5 $D/images/qcd.h5"
for v in disco_10 planing disco_1 disco_50; do
  t0=$(date +%s)
  $PY train --config $R/config.yaml --inputs $IM --model $R/variants/$v.keras --history $R/variants/$v.json --variant $v > $R/train_$v.log 2>&1
  echo "train $v rc=$? $(( $(date +%s) - t0 )) s" >> $R/times.txt
  t0=$(date +%s)
  V=$(ls $R/variants/*.keras | while read f; do n=$(basename $f .keras); echo "$n=$f"; done)
  $PY evaluate --config $R/config.yaml --inputs $IM --model $D/model/model.keras --metrics $R/metrics.json --scores $R/scores.npz --preprocessing /tmp/mass_wt/preprocessing.json --variants $V > $R/evaluate.log 2>&1
  echo "evaluate after $v rc=$? $(( $(date +%s) - t0 )) s" >> $R/times.txt
done
$PY plots --config $R/config.yaml --scores $R/scores.npz --outdir $R/plots --figures roc sculpting cnn_vs_mass > $R/plots.log 2>&1
echo "plots rc=$?" >> $R/times.txt
for how in boost l2; do
  B=/tmp/mass_wt/$how
  t0=$(date +%s)
  for s in wjets qcd; do
    $PY images --config $B/config.yaml --sample $s --inputs $D/samples/$s/shard*.root --output $B/images/$s.h5 > $B/images_$s.log 2>&1
  done
  $PY train --config $B/config.yaml --inputs $B/images/wjets.h5 $B/images/qcd.h5 --model $B/model.keras --history $B/history.json > $B/train.log 2>&1
  echo "$how images+train rc=$? $(( $(date +%s) - t0 )) s" >> $R/times.txt
  $PY evaluate --config $B/config.yaml --inputs $B/images/wjets.h5 $B/images/qcd.h5 --model $B/model.keras --metrics $B/metrics.json --scores $B/scores.npz > $B/evaluate.log 2>&1
  echo "$how evaluate rc=$?" >> $R/times.txt
done
echo done >> $R/times.txt
