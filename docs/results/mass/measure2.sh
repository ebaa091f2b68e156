#!/bin/bash
while ! grep -q done /tmp/mass_wt/run/times.txt; do sleep 5; done
export PYTHONPATH=/work/wt-mass/src TF_CPP_MIN_LOG_LEVEL=2
PY="nice /work/main/.venv/bin/python -m jetimage"
D=/tmp/defrun/results/jets
R=/tmp/mass_wt/run
IM="$D/images/wjets.h5 $D/images/qcd.h5"
for v in disco_10_b1024 disco_3_b1024; do
  t0=$(date +%s)
  $PY train --config $R/config2.yaml --inputs $IM --model $R/variants/$v.keras --history $R/variants/$v.json --variant $v > $R/train_$v.log 2>&1
  echo "train $v rc=$? $(( $(date +%s) - t0 )) s" >> $R/times2.txt
done
V=$(ls $R/variants/*.keras | while read f; do n=$(basename $f .keras); echo "$n=$f"; done)
$PY evaluate --config $R/config2.yaml --inputs $IM --model $D/model/model.keras --metrics $R/metrics2.json --scores $R/scores2.npz --preprocessing /tmp/mass_wt/preprocessing.json --variants $V > $R/evaluate2.log 2>&1
echo "evaluate2 rc=$?" >> $R/times2.txt
$PY plots --config $R/config2.yaml --scores $R/scores2.npz --outdir $R/plots2 --figures roc sculpting > $R/plots2.log 2>&1
echo "plots2 rc=$? done" >> $R/times2.txt
