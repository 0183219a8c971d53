// A JVM workload for preload_test (RealProgram): a HashMap of N arrays built,
// then read and replaced at random (garbage for the collector), a checksum
// printed. Deterministic: the same N prints the same line, paged or not.
import java.util.HashMap;
import java.util.Random;

public class Hog {
  public static void main(String[] args) {
    int n = Integer.parseInt(args[0]);
    HashMap<Integer, long[]> m = new HashMap<>();
    Random r = new Random(42);
    long sum = 0;
    for (int i = 0; i < n; i++) {
      long[] v = new long[8];
      for (int k = 0; k < 8; k++) v[k] = r.nextLong();
      m.put(i, v);
    }
    for (int i = 0; i < n; i++) {
      int k = r.nextInt(n);
      sum += m.get(k)[i % 8];
      if (i % 3 == 0) m.put(k, new long[] {sum, 1, 2, 3, 4, 5, 6, 7});
    }
    System.out.println(m.size() + " " + sum);
  }
}
