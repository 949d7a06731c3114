"""Reads a TensorBoard log folder with the tensorboard package and prints JSON for tests/loop/test_tensorboard.cpp:
{"file_version": <first event's file_version>, "scalars": {tag: [[step, value, wall_time], ...]}}.
Exit status 77 when tensorboard is not importable (the test then prints KAIZEN_SKIP)."""
import json
import os
import sys

try:
    from tensorboard.backend.event_processing import event_accumulator, event_file_loader
except ImportError:
    sys.exit(77)

folder = sys.argv[1]
files = sorted(f for f in os.listdir(folder) if f.startswith("events.out.tfevents."))
if len(files) != 1:
    sys.exit("expected one event file in %s, found %s" % (folder, files))
# The raw loader checks each record's CRCs; the first event carries the file version.
first = next(iter(event_file_loader.LegacyEventFileLoader(os.path.join(folder, files[0])).Load()))
acc = event_accumulator.EventAccumulator(folder, size_guidance={event_accumulator.SCALARS: 0})
acc.Reload()
scalars = {tag: [[e.step, e.value, e.wall_time] for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}
print(json.dumps({"file_version": first.file_version, "scalars": scalars}))
