"""The seeded synthetic population (people, devices, items, stores, history, sensor traces with
ground-truth states, purchase outcomes) that the demo, the tests and the benchmarks run on."""
