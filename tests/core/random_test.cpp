#include <gtest/gtest.h>
#include <parasol/random.hpp>

#include <cmath>

using parasol::Random;

TEST(Random, SameKeySameStreamDifferentKeyDifferentStream) {
  Random a(7, "test", 3), b(7, "test", 3), c(7, "test", 4), d(8, "test", 3), e(7, "other", 3);
  for (int i = 0; i < 10; ++i) {
    const auto x = a.next_u64();
    EXPECT_EQ(x, b.next_u64());
    EXPECT_NE(x, c.next_u64());
    EXPECT_NE(x, d.next_u64());
    EXPECT_NE(x, e.next_u64());
  }
}

TEST(Random, MomentsOfUniformAndNormal) {
  Random r(1, "moments");
  const int n = 200000;
  double su = 0, sn = 0, sn2 = 0;
  for (int i = 0; i < n; ++i) {
    const double u = r.uniform();
    ASSERT_GE(u, 0.0);
    ASSERT_LT(u, 1.0);
    su += u;
    const double z = r.normal();
    sn += z;
    sn2 += z * z;
  }
  EXPECT_NEAR(su / n, 0.5, 5e-3);
  EXPECT_NEAR(sn / n, 0.0, 1e-2);
  EXPECT_NEAR(sn2 / n, 1.0, 2e-2);
}

TEST(Random, BelowIsInRangeAndCoversIt) {
  Random r(3, "below");
  int counts[5] = {0, 0, 0, 0, 0};
  for (int i = 0; i < 5000; ++i) {
    const auto k = r.below(5);
    ASSERT_LT(k, 5u);
    ++counts[k];
  }
  for (int c : counts) EXPECT_NEAR(c, 1000, 150);
}
