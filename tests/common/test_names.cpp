// Guards the test registry itself: catch_discover_tests (Catch2 v2) writes each test name into
// a CMake bracket argument, so a name with '[', ']' or ';' silently merges many tests into one
// ctest entry that runs none of them. Every name must be safe.
#include <catch2/catch.hpp>

#include <string>

TEST_CASE("tests/registry: test names are safe for ctest discovery", "[meta][cpu]") {
  const auto& all = Catch::getAllTestCasesSorted(*Catch::getCurrentContext().getConfig());
  REQUIRE(all.size() > 100);
  for (const auto& tc : all) {
    INFO("test name: " << tc.name);
    CHECK(tc.name.find_first_of("[];") == std::string::npos);
  }
}
