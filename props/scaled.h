// RC_GTEST_SCALED_PROP: a RapidCheck property as a GoogleTest whose case count is the
// configured max_success divided by DIV (at least 1), so that RC_PARAMS="max_success=N" scales
// every property of the suite together (module_diff_prop.cc makes the default 1000).
#pragma once

#include <gtest/gtest.h>
#include <rapidcheck.h>
#include <rapidcheck/gtest.h>

#include <algorithm>
#include <sstream>
#include <string>

namespace props {

// Runs `prop` as RC_GTEST_PROP does, with max_success = configured / den (at least 1).
template <typename Prop>
void check_scaled(Prop prop, int den) {
  const auto info = ::testing::UnitTest::GetInstance()->current_test_info();
  rc::detail::TestMetadata metadata;
  metadata.id = std::string(info->test_case_name()) + "/" + info->name();
  metadata.description = info->name();
  rc::detail::TestParams params = rc::detail::configuration().testParams;
  params.maxSuccess = std::max(1, params.maxSuccess / den);
  const auto result = rc::detail::checkTestable(prop, metadata, params);
  if (!result.template is<rc::detail::SuccessResult>()) {
    std::ostringstream ss;
    rc::detail::printResultMessage(result, ss);
    FAIL() << ss.str() << std::endl;
  }
}

}  // namespace props

// RC_GTEST_PROP with a case count of the configured max_success / DIV.
#define RC_GTEST_SCALED_PROP(Suite, Name, DIV)                       \
  void rapidCheck_propImpl_##Suite##_##Name();                       \
  TEST(Suite, Name) {                                                \
    props::check_scaled(&rapidCheck_propImpl_##Suite##_##Name, DIV); \
  }                                                                  \
  void rapidCheck_propImpl_##Suite##_##Name()
