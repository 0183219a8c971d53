# A real-program workload of the bench (bench/harness/programs.py): an
# inverted index of N synthetic documents in dicts and lists, sorted and
# hashed. Deterministic: the same N prints the same line, paged or not.
import hashlib
import random
import sys

n = int(sys.argv[1])
rng = random.Random(7)
vocabulary = ["w%x" % rng.getrandbits(24) for _ in range(5000)]
index = {}
for doc in range(n):
    for word in rng.sample(vocabulary, 4):
        index.setdefault(word, []).append(doc)
postings = sorted(index.items(), key=lambda kv: (len(kv[1]), kv[0]))
h = hashlib.sha256()
for word, docs in postings:
    h.update(word.encode())
    h.update(bytes(str(docs[::7]), "ascii"))
print(len(index), sum(len(d) for d in index.values()), h.hexdigest())
