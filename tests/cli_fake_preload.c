/* An empty library for pagerctl's tests: `pagerctl run --preload` needs a
   real shared object, and the test checks the environment, not paging. */
void pagerctl_test_fake_preload(void) {}
